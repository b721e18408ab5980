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
// updated both PUT the product; with the same optional fields, the later
// overwrites all the earlier set). Other events are not coalesced.
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
		// The PUT leaves out the optional fields an event lacks, and
		// Magento keeps what it is not sent: only an event with the same
		// optional fields overwrites all that an earlier one set.
		var p struct {
			Visibility     json.RawMessage `json:"visibility"`
			TypeID         json.RawMessage `json:"type_id"`
			AttributeSetID json.RawMessage `json:"attribute_set_id"`
			Weight         json.RawMessage `json:"weight"`
		}
		if json.Unmarshal(ev.Data, &p) != nil {
			return "", false
		}
		key := []byte("product\x00....")
		for i, f := range []json.RawMessage{p.Visibility, p.TypeID, p.AttributeSetID, p.Weight} {
			if f != nil && string(f) != "null" {
				key[len("product\x00")+i] = "vtaw"[i]
			}
		}
		return string(key), true
	}
	return "", false
}
