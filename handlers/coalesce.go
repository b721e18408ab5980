package handlers

import (
	"encoding/json"
	"strconv"

	"github.com/shopstream/shopstream/topics"
)

// CoalesceKey names the Magento state an event overwrites completely, for
// processor.GroupConfig.Coalesce: a newer event with the same key makes an
// older one pointless. The source item of a SKU at one source
// (stock.updated and stock.adjusted both send the absolute quantity), the
// base price of a SKU in one store, and the product itself (created and
// updated both PUT the full product). Other events are not coalesced.
func CoalesceKey(ev *topics.Event) (string, bool) {
	switch ev.Type {
	case topics.TypeStockUpdated, topics.TypeStockAdjusted:
		var p struct {
			SourceCode string `json:"source_code"`
		}
		if json.Unmarshal(ev.Data, &p) != nil {
			return "", false
		}
		return "source-item\x00" + p.SourceCode, true
	case topics.TypePriceChanged:
		var p struct {
			StoreID int `json:"store_id"`
		}
		if json.Unmarshal(ev.Data, &p) != nil {
			return "", false
		}
		return "base-price\x00" + strconv.Itoa(p.StoreID), true
	case topics.TypeProductCreated, topics.TypeProductUpdated:
		return "product", true
	}
	return "", false
}
