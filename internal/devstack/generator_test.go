package devstack_test

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/shopstream/shopstream/internal/devstack"
	"github.com/shopstream/shopstream/topics"
)

// requiredData lists payload fields every event of a type carries.
var requiredData = map[string][]string{
	devstack.TypeProductCreated:    {"sku", "name", "price", "status", "visibility", "type_id", "attribute_set_id", "weight"},
	devstack.TypeProductUpdated:    {"sku", "name", "price", "status", "visibility", "type_id", "attribute_set_id", "weight"},
	devstack.TypePriceChanged:      {"sku", "price", "store_id"},
	devstack.TypeStockUpdated:      {"sku", "source_code", "quantity", "status"},
	devstack.TypeThresholdBreached: {"sku", "source_code", "quantity", "threshold"},
	devstack.TypeOrderPlaced:       {"order_id", "customer_id", "email", "grand_total", "currency", "items"},
	devstack.TypePaymentCaptured:   {"order_id", "amount", "currency", "method", "transaction_id"},
	devstack.TypeShipmentUpdated:   {"order_id", "shipment_id", "status", "carrier", "tracking_number"},
	devstack.TypeReturnInitiated:   {"order_id", "return_id", "reason", "items"},
	devstack.TypeCustomerCreated:   {"customer_id", "email", "first_name", "last_name"},
	devstack.TypeLoyaltyTier:       {"customer_id", "from_tier", "to_tier"},
	devstack.TypeSegmentUpdated:    {"customer_id", "segments"},
}

var sourceOf = map[string]string{
	topics.TopicCatalog:   devstack.SourceCatalog,
	topics.TopicInventory: devstack.SourceInventory,
	topics.TopicOrder:     devstack.SourceOrder,
	topics.TopicCustomer:  devstack.SourceCustomer,
}

func TestGenerateDefaults(t *testing.T) {
	t.Parallel()
	_, cl := startKafka(t, devstack.KafkaOptions{})
	ctx := testContext(t)
	m, err := devstack.Generate(ctx, cl, devstack.GenConfig{Seed: 7})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	st := m.Stats()
	t.Logf("stats: %+v", st)

	// Configured counts.
	for typ, want := range map[string]int{
		devstack.TypeProductCreated:  devstack.DefaultSKUs,
		devstack.TypeStockUpdated:    devstack.DefaultStockUpdates,
		devstack.TypeOrderPlaced:     devstack.DefaultOrders,
		devstack.TypeCustomerCreated: devstack.DefaultCustomers,
	} {
		if st.ByType[typ] != want {
			t.Errorf("%d original %s events, want %d", st.ByType[typ], typ, want)
		}
	}
	if got := st.ByType[devstack.TypeProductUpdated] + st.ByType[devstack.TypePriceChanged]; got != 2*devstack.DefaultSKUs {
		t.Errorf("%d catalog updates, want %d", got, 2*devstack.DefaultSKUs)
	}
	for _, typ := range []string{devstack.TypeThresholdBreached, devstack.TypePaymentCaptured, devstack.TypeShipmentUpdated, devstack.TypeLoyaltyTier, devstack.TypeSegmentUpdated} {
		if st.ByType[typ] == 0 {
			t.Errorf("no %s events", typ)
		}
	}

	// Marks: exact counts of round(rate × originals).
	base := 0
	for _, n := range st.ByType {
		base += n
	}
	near := func(rate float64, n int) int { return max(1, int(math.Round(rate*float64(n)))) }
	if want := near(devstack.DefaultDuplicateRate, base); st.Duplicates != want {
		t.Errorf("%d duplicates, want %d", st.Duplicates, want)
	}
	if want := near(devstack.DefaultPoisonRate, base); st.Poison != want {
		t.Errorf("%d poison records, want %d", st.Poison, want)
	}
	fenced := st.ByType[devstack.TypeProductCreated] + st.ByType[devstack.TypeProductUpdated] + st.ByType[devstack.TypePriceChanged] + st.ByType[devstack.TypeStockUpdated]
	if maxStale := near(devstack.DefaultStaleRate, fenced); st.Stale == 0 || st.Stale > maxStale {
		t.Errorf("%d stale records, want 1..%d", st.Stale, maxStale)
	}

	checkRecords(t, m)

	// The manifest's offsets are the topics' contents.
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics.TopicCatalog, topics.TopicInventory, topics.TopicOrder, topics.TopicCustomer)
	if err != nil {
		t.Fatalf("ListEndOffsets: %v", err)
	}
	perPartition := make(map[string]map[int32]int64)
	for _, r := range m.Records {
		if perPartition[r.Topic] == nil {
			perPartition[r.Topic] = make(map[int32]int64)
		}
		if r.Offset != perPartition[r.Topic][r.Partition] {
			t.Fatalf("%s/%d: manifest offset %d, want %d (gap or reorder)", r.Topic, r.Partition, r.Offset, perPartition[r.Topic][r.Partition])
		}
		perPartition[r.Topic][r.Partition]++
	}
	ends.Each(func(o kadm.ListedOffset) {
		if got := perPartition[o.Topic][o.Partition]; got != o.Offset {
			t.Errorf("%s/%d: manifest has %d records, end offset is %d", o.Topic, o.Partition, got, o.Offset)
		}
	})
}

// checkRecords checks every record of m against the event contract and its
// marks.
func checkRecords(t *testing.T, m *devstack.Manifest) {
	t.Helper()
	type subject struct{ topic, key string }
	last := make(map[subject]int64)      // highest version so far
	seen := make(map[string][]byte)      // id → value of its first record
	firstType := make(map[string]string) // SKU → its first catalog type
	for _, r := range m.Records {
		if r.Poison {
			checkPoison(t, r)
			continue
		}
		var ev topics.Event
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			t.Fatalf("%s %s: value is not JSON: %v", r.Topic, r.ID, err)
		}
		switch {
		case ev.SpecVersion != "1.0", ev.ID == "" || ev.ID != r.ID, ev.Source != sourceOf[r.Topic],
			ev.Type != r.Type, ev.Subject != r.Key, ev.Time.IsZero(), ev.Version != r.Version || ev.Version <= 0,
			ev.DataContentType != "application/json":
			t.Fatalf("%s: bad envelope %s (manifest %+v)", r.Topic, r.Value, r)
		}
		var data map[string]any
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			t.Fatalf("%s: data is not an object: %v", r.ID, err)
		}
		fields, ok := requiredData[ev.Type]
		if !ok {
			t.Fatalf("%s: unexpected type %s on %s", r.ID, ev.Type, r.Topic)
		}
		for _, f := range fields {
			if _, ok := data[f]; !ok {
				t.Fatalf("%s %s: data lacks %q: %s", ev.Type, r.ID, f, ev.Data)
			}
		}
		if r.Topic == topics.TopicCatalog {
			if _, ok := firstType[r.Key]; !ok {
				firstType[r.Key] = r.Type
				if r.Type != devstack.TypeProductCreated {
					t.Fatalf("first catalog event of %s is %s", r.Key, r.Type)
				}
			}
		}

		s := subject{r.Topic, r.Key}
		switch {
		case r.Duplicate:
			if first, ok := seen[r.ID]; !ok || string(first) != string(r.Value) {
				t.Fatalf("duplicate %s does not repeat an earlier record", r.ID)
			}
		case r.Stale:
			if _, dup := seen[r.ID]; dup {
				t.Fatalf("stale %s reuses an id", r.ID)
			}
			if r.Version >= last[s] {
				t.Fatalf("stale %s %s v%d is not older than v%d", r.Topic, r.Key, r.Version, last[s])
			}
		default:
			if _, dup := seen[r.ID]; dup {
				t.Fatalf("id %s used twice", r.ID)
			}
			if r.Version <= last[s] {
				t.Fatalf("%s %s: version %d after %d", r.Topic, r.Key, r.Version, last[s])
			}
			last[s] = r.Version
		}
		if _, ok := seen[r.ID]; !ok {
			seen[r.ID] = r.Value
		}
	}
}

// checkPoison checks that a poison record is broken the way its kind says.
func checkPoison(t *testing.T, r devstack.Produced) {
	t.Helper()
	if r.PoisonKind == devstack.PoisonInvalidJSON {
		if json.Valid(r.Value) {
			t.Fatalf("invalid-json poison is valid JSON: %s", r.Value)
		}
		return
	}
	var ev map[string]any
	if err := json.Unmarshal(r.Value, &ev); err != nil {
		t.Fatalf("%s poison is not JSON: %v", r.PoisonKind, err)
	}
	data, _ := ev["data"].(map[string]any)
	broken := false
	switch r.PoisonKind {
	case devstack.PoisonNotCloudEvent:
		broken = ev["specversion"] == nil && ev["id"] == nil && ev["type"] == nil
	case devstack.PoisonUnknownType:
		_, known := requiredData[ev["type"].(string)]
		broken = !known
	case devstack.PoisonMissingSKU:
		broken = data != nil && data["sku"] == nil
	case devstack.PoisonNegativePrice:
		p, _ := data["price"].(float64)
		broken = p < 0
	case devstack.PoisonMissingVersion:
		broken = ev["version"] == nil && r.Topic == topics.TopicInventory
	case devstack.PoisonMissingOrderID:
		broken = data != nil && data["order_id"] == nil
	case devstack.PoisonMissingCustomerID:
		broken = data != nil && data["customer_id"] == nil
	}
	if !broken {
		t.Fatalf("%s poison is not broken that way: %s", r.PoisonKind, r.Value)
	}
}

func TestGenerateIsReproducibleAndConfigurable(t *testing.T) {
	t.Parallel()
	_, cl := startKafka(t, devstack.KafkaOptions{})
	ctx := testContext(t)
	cfg := devstack.GenConfig{SKUs: 5, CatalogUpdates: 10, StockUpdates: 30, Orders: 4, Customers: 3, Seed: 99,
		DuplicateRate: 0.2, StaleRate: 0.2, PoisonRate: 0.2}
	a, err := devstack.Generate(ctx, cl, cfg)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	b, err := devstack.Generate(ctx, cl, cfg)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if len(a.Records) != len(b.Records) {
		t.Fatalf("same seed, %d then %d records", len(a.Records), len(b.Records))
	}
	for i := range a.Records {
		x, y := a.Records[i], b.Records[i]
		if x.Topic != y.Topic || x.Key != y.Key || x.Type != y.Type || x.Version != y.Version ||
			x.Poison != y.Poison || x.PoisonKind != y.PoisonKind || x.Duplicate != y.Duplicate || x.Stale != y.Stale {
			t.Fatalf("same seed, record %d differs: %+v vs %+v", i, x, y)
		}
	}
	st := a.Stats()
	if st.ByType[devstack.TypeProductCreated] != 5 || st.ByType[devstack.TypeStockUpdated] != 30 ||
		st.ByType[devstack.TypeOrderPlaced] != 4 || st.ByType[devstack.TypeCustomerCreated] != 3 {
		t.Fatalf("counts %v do not match %+v", st.ByType, cfg)
	}
	if st.Poison == 0 || st.Duplicates == 0 || st.Stale == 0 {
		t.Fatalf("marks missing: %+v", st)
	}
	checkRecords(t, a)

	none, err := devstack.Generate(ctx, cl, devstack.GenConfig{SKUs: 3, CatalogUpdates: -1, StockUpdates: 10, Orders: -1, Customers: -1,
		DuplicateRate: -1, StaleRate: -1, PoisonRate: -1})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	st = none.Stats()
	if st.Poison+st.Duplicates+st.Stale != 0 || len(none.ByTopic(topics.TopicOrder))+len(none.ByTopic(topics.TopicCustomer)) != 0 {
		t.Fatalf("negative settings still produced marks or orders: %+v", st)
	}
	if st.ByType[devstack.TypeProductCreated] != 3 || st.ByType[devstack.TypeProductUpdated]+st.ByType[devstack.TypePriceChanged] != 0 {
		t.Fatalf("catalog counts %v, want 3 creations and no updates", st.ByType)
	}
}

func TestGenConfigValidate(t *testing.T) {
	t.Parallel()
	for _, cfg := range []devstack.GenConfig{
		{PoisonRate: 1.5},
		{DuplicateRate: math.NaN()},
		{SKUs: -1},
		{Customers: -1},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", cfg)
		}
	}
	if err := (devstack.GenConfig{}).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	eff := devstack.GenConfig{Orders: -5}.Effective()
	if eff.Orders != -1 || eff.SKUs != devstack.DefaultSKUs || eff.Effective() != eff {
		t.Errorf("Effective = %+v: want Orders -1, defaults elsewhere, idempotent", eff)
	}
}
