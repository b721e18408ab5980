package devstack

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Event types the generator writes. topics defines the contract; these
// mirror it so devstack depends only on the topic names.
const (
	TypeProductCreated    = "catalog.product.created"
	TypeProductUpdated    = "catalog.product.updated"
	TypePriceChanged      = "catalog.price.changed"
	TypeStockAdjusted     = "catalog.stock.adjusted"
	TypeStockUpdated      = "inventory.stock.updated"
	TypeThresholdBreached = "inventory.threshold.breached"
	TypeOrderPlaced       = "order.placed"
	TypePaymentCaptured   = "order.payment.captured"
	TypeShipmentUpdated   = "order.shipment.updated"
	TypeReturnInitiated   = "order.return.initiated"
	TypeCustomerCreated   = "customer.created"
	TypeLoyaltyTier       = "customer.loyalty_tier.changed"
	TypeSegmentUpdated    = "customer.segment.updated"
)

// Event sources, one per topic.
const (
	SourceCatalog   = "magento/catalog"
	SourceInventory = "erp/warehouse-feed"
	SourceOrder     = "magento/sales"
	SourceCustomer  = "magento/customer"
)

// Poison kinds the generator writes (Produced.PoisonKind).
const (
	PoisonInvalidJSON       = "invalid-json"        // value is not JSON
	PoisonNotCloudEvent     = "not-cloudevent"      // JSON without specversion, id, type
	PoisonUnknownType       = "unknown-type"        // a type no schema knows
	PoisonMissingSKU        = "missing-sku"         // data without sku
	PoisonNegativePrice     = "negative-price"      // catalog.price.changed with price < 0
	PoisonMissingVersion    = "missing-version"     // inventory event without version
	PoisonMissingOrderID    = "missing-order-id"    // order.placed without order_id
	PoisonMissingCustomerID = "missing-customer-id" // customer.created without customer_id
)

// Defaults of GenConfig's zero fields.
const (
	DefaultSKUs          = 50
	DefaultOrders        = 40
	DefaultCustomers     = 20
	DefaultStockUpdates  = 400
	DefaultDuplicateRate = 0.05
	DefaultStaleRate     = 0.05
	DefaultPoisonRate    = 0.02
)

// GenConfig configures Generate. A zero field takes its default; a negative
// field means none (no orders, no duplicates, ...).
type GenConfig struct {
	// SKUs is the number of products; each gets one
	// catalog.product.created (default 50).
	SKUs int `json:"skus"`
	// CatalogUpdates is the number of catalog.product.updated and
	// catalog.price.changed events after the creations (default 2×SKUs).
	CatalogUpdates int `json:"catalog_updates"`
	// StockUpdates is the number of in-order inventory.stock.updated
	// events (default 400). A few inventory.threshold.breached follow
	// updates that cross the low-stock threshold.
	StockUpdates int `json:"stock_updates"`
	// Orders is the number of order.placed events; each order goes on
	// through payment, shipment and sometimes a return (default 40).
	Orders int `json:"orders"`
	// Customers is the number of customer.created events, followed by some
	// tier and segment changes (default 20). Orders need customers.
	Customers int `json:"customers"`
	// Seed makes the traffic reproducible: keys, types, versions, payloads
	// and marks. Event times, and the time part of the ids, are not.
	Seed int64 `json:"seed"`
	// DuplicateRate is the share of events produced a second time, with
	// the same id and bytes, a little later (default 0.05).
	DuplicateRate float64 `json:"duplicate_rate"`
	// StaleRate is the share of catalog and inventory events after which
	// an older version of the same SKU is produced again, as a new event
	// with the old version and data (default 0.05).
	StaleRate float64 `json:"stale_rate"`
	// PoisonRate is the share of events followed by a poison record on the
	// same topic and key (default 0.02).
	PoisonRate float64 `json:"poison_rate"`
}

// Effective returns c with defaults applied; negative fields become -1.
func (c GenConfig) Effective() GenConfig {
	count := func(v, def int) int {
		switch {
		case v == 0:
			return def
		case v < 0:
			return -1
		}
		return v
	}
	rate := func(v, def float64) float64 {
		switch {
		case v == 0:
			return def
		case v < 0:
			return -1
		}
		return v
	}
	c.SKUs = count(c.SKUs, DefaultSKUs)
	c.CatalogUpdates = count(c.CatalogUpdates, 2*max(c.SKUs, 0))
	c.StockUpdates = count(c.StockUpdates, DefaultStockUpdates)
	c.Orders = count(c.Orders, DefaultOrders)
	c.Customers = count(c.Customers, DefaultCustomers)
	c.DuplicateRate = rate(c.DuplicateRate, DefaultDuplicateRate)
	c.StaleRate = rate(c.StaleRate, DefaultStaleRate)
	c.PoisonRate = rate(c.PoisonRate, DefaultPoisonRate)
	return c
}

// Validate reports every problem of the effective configuration.
func (c GenConfig) Validate() error {
	c = c.Effective()
	var errs []error
	for _, r := range []struct {
		name string
		v    float64
	}{{"DuplicateRate", c.DuplicateRate}, {"StaleRate", c.StaleRate}, {"PoisonRate", c.PoisonRate}} {
		if r.v > 1 || math.IsNaN(r.v) {
			errs = append(errs, fmt.Errorf("GenConfig.%s = %v: must be at most 1", r.name, r.v))
		}
	}
	if c.SKUs < 0 && (c.StockUpdates > 0 || c.Orders > 0 || c.CatalogUpdates > 0) {
		errs = append(errs, errors.New("GenConfig.SKUs: stock updates, catalog updates and orders need SKUs"))
	}
	if c.Customers < 0 && c.Orders > 0 {
		errs = append(errs, errors.New("GenConfig.Customers: orders need customers"))
	}
	return errors.Join(errs...)
}

// Produced is one record Generate wrote.
type Produced struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       string `json:"key"`
	// ID is the event id; empty for poison records without a readable id.
	ID string `json:"id,omitempty"`
	// Type is the event type; empty for poison records without one.
	Type    string `json:"type,omitempty"`
	Version int64  `json:"version,omitempty"`
	// Poison marks a record no consumer can process; PoisonKind says why.
	Poison     bool   `json:"poison,omitempty"`
	PoisonKind string `json:"poison_kind,omitempty"`
	// Duplicate marks a second copy of an earlier record: same id, same bytes.
	Duplicate bool `json:"duplicate,omitempty"`
	// Stale marks a new event carrying an older version (and that version's
	// data) of its subject, produced after a newer one.
	Stale bool   `json:"stale,omitempty"`
	Value []byte `json:"-"`
}

// Manifest is everything Generate produced, in production order.
type Manifest struct {
	Config  GenConfig  `json:"config"` // effective configuration
	Records []Produced `json:"records"`
}

// ManifestStats summarises a Manifest.
type ManifestStats struct {
	Records    int `json:"records"`
	Poison     int `json:"poison"`
	Duplicates int `json:"duplicates"`
	Stale      int `json:"stale"`
	// ByTopic counts every record per topic.
	ByTopic map[string]int `json:"by_topic"`
	// ByType counts the original events per type: not poison, not
	// duplicates, not stale.
	ByType map[string]int `json:"by_type"`
}

// Stats counts the manifest's records.
func (m *Manifest) Stats() ManifestStats {
	st := ManifestStats{ByTopic: make(map[string]int), ByType: make(map[string]int)}
	for _, r := range m.Records {
		st.Records++
		st.ByTopic[r.Topic]++
		switch {
		case r.Poison:
			st.Poison++
		case r.Duplicate:
			st.Duplicates++
		case r.Stale:
			st.Stale++
		default:
			st.ByType[r.Type]++
		}
	}
	return st
}

// Count returns how many records match keep.
func (m *Manifest) Count(keep func(Produced) bool) int {
	n := 0
	for _, r := range m.Records {
		if keep(r) {
			n++
		}
	}
	return n
}

// Filter returns the records that match keep, in production order.
func (m *Manifest) Filter(keep func(Produced) bool) []Produced {
	var out []Produced
	for _, r := range m.Records {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// ByTopic returns the records of topic, in production order.
func (m *Manifest) ByTopic(topic string) []Produced {
	return m.Filter(func(r Produced) bool { return r.Topic == topic })
}

// Poison returns the poison records, in production order.
func (m *Manifest) Poison() []Produced {
	return m.Filter(func(r Produced) bool { return r.Poison })
}

// Find returns the first record with event id id.
func (m *Manifest) Find(id string) (Produced, bool) {
	for _, r := range m.Records {
		if id != "" && r.ID == id {
			return r, true
		}
	}
	return Produced{}, false
}

// HighestVersions returns, per key of topic, the highest version of its
// non-poison records; if types are given, only of those types.
func (m *Manifest) HighestVersions(topic string, types ...string) map[string]int64 {
	out := make(map[string]int64)
	for _, r := range m.Records {
		if r.Topic != topic || r.Poison || (len(types) > 0 && !contains(types, r.Type)) {
			continue
		}
		out[r.Key] = max(out[r.Key], r.Version)
	}
	return out
}

// produceBatch is how many records Generate hands to ProduceSync at once.
const produceBatch = 500

// Generate writes realistic contract traffic to the four default topics with
// cl and returns what it wrote. Records of one key are produced in order, so
// cl must keep per-partition order (kgo does, including with its default
// idempotent producer). cl should require acks from all in-sync replicas
// (kgo's default). On error the manifest holds every record acknowledged before it stopped.
func Generate(ctx context.Context, cl *kgo.Client, cfg GenConfig) (*Manifest, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	cfg = cfg.Effective()
	plans := newGen(cfg, time.Now()).plan()

	m := &Manifest{Config: cfg, Records: make([]Produced, 0, len(plans))}
	hdr := []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/cloudevents+json; charset=utf-8")}}
	for start := 0; start < len(plans); start += produceBatch {
		batch := plans[start:min(start+produceBatch, len(plans))]
		recs := make([]*kgo.Record, len(batch))
		for i, p := range batch {
			recs[i] = &kgo.Record{Topic: p.topic, Key: []byte(p.key), Value: p.value, Headers: hdr}
		}
		// Results come in completion order; the records themselves carry
		// their partition and offset once ProduceSync returns.
		failed := make(map[*kgo.Record]error)
		for _, r := range cl.ProduceSync(ctx, recs...) {
			if r.Err != nil {
				failed[r.Record] = r.Err
			}
		}
		var firstErr error
		for i, r := range recs {
			p := batch[i]
			if err := failed[r]; err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("produce %s key %s: %w", p.topic, p.key, err)
				}
				continue
			}
			m.Records = append(m.Records, Produced{
				Topic: p.topic, Partition: r.Partition, Offset: r.Offset,
				Key: p.key, ID: p.id, Type: p.typ, Version: p.version,
				Poison: p.poisonKind != "", PoisonKind: p.poisonKind,
				Duplicate: p.dup, Stale: p.stale, Value: p.value,
			})
		}
		if firstErr != nil {
			return m, firstErr
		}
	}
	return m, nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
