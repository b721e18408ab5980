package devstack

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/shopstream/shopstream/topics"
)

// lowStock is the threshold below which inventory.threshold.breached fires.
const lowStock = 5

// plan is one record to produce.
type plan struct {
	topic, key string
	id, typ    string
	version    int64
	value      []byte
	poisonKind string // empty: not poison
	dup, stale bool

	// The envelope parts a stale copy or a poison variant reuses.
	source string
	at     time.Time
	data   json.RawMessage
}

// gen builds the traffic of one Generate call. It is not safe for
// concurrent use.
type gen struct {
	cfg   GenConfig
	rng   *rand.Rand
	clock time.Time
	ids   map[string]bool
	ver   map[string]int64 // per topic and key: the last version
}

func newGen(cfg GenConfig, now time.Time) *gen {
	return &gen{
		cfg:   cfg,
		rng:   rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5ee5_7ea4)),
		clock: now.UTC().Truncate(time.Millisecond),
		ids:   make(map[string]bool),
		ver:   make(map[string]int64),
	}
}

// plan returns every record in production order: the four streams
// interleaved at random, each with its duplicates, stale copies and poison
// records woven in after the events they derive from.
func (g *gen) plan() []*plan {
	products := g.products()
	customers := g.customers()
	streams := [][]*plan{
		g.catalogStream(products),
		g.inventoryStream(products),
		g.orderStream(products, customers),
		g.customerStream(customers),
	}
	g.addMarks(streams)
	return g.merge(streams)
}

// --- identity, time and versions ---

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// newID returns a ULID: 48 bits of event time in ms and 80 seeded random
// bits, in Crockford base32; unique within the run.
func (g *gen) newID(at time.Time) string {
	for {
		var b [26]byte
		ms := uint64(at.UnixMilli())
		for i := 9; i >= 0; i-- {
			b[i] = crockford[ms&31]
			ms >>= 5
		}
		for i := 10; i < 26; i++ {
			b[i] = crockford[g.rng.IntN(32)]
		}
		if id := string(b[:]); !g.ids[id] {
			g.ids[id] = true
			return id
		}
	}
}

// tick returns the next event time: one millisecond after the last.
func (g *gen) tick() time.Time {
	g.clock = g.clock.Add(time.Millisecond)
	return g.clock
}

// nextVersion advances the source's per-subject counter of topic.
func (g *gen) nextVersion(topic, key string) int64 {
	k := topic + "\x00" + key
	g.ver[k]++
	return g.ver[k]
}

// event builds one valid event of topic with a fresh id and version.
func (g *gen) event(topic, source, typ, key string, data any) *plan {
	raw, err := json.Marshal(data)
	if err != nil {
		panic(fmt.Sprintf("devstack: marshal %s data: %v", typ, err)) // our own types: cannot fail
	}
	p := &plan{topic: topic, key: key, typ: typ, source: source, at: g.tick(), data: raw}
	p.id = g.newID(p.at)
	p.version = g.nextVersion(topic, key)
	p.value = envelope(p.id, source, typ, key, p.at, p.version, raw)
	return p
}

// envelope marshals a CloudEvent; version 0 is left out.
func envelope(id, source, typ, subject string, at time.Time, version int64, data json.RawMessage) []byte {
	b, err := json.Marshal(topics.Event{
		SpecVersion:     "1.0",
		ID:              id,
		Source:          source,
		Type:            typ,
		Subject:         subject,
		Time:            at,
		Version:         version,
		DataContentType: "application/json",
		Data:            data,
	})
	if err != nil {
		panic(fmt.Sprintf("devstack: marshal event %s: %v", id, err)) // RawMessage from json.Marshal: cannot fail
	}
	return b
}

func (g *gen) pick(s []string) string { return s[g.rng.IntN(len(s))] }

func (g *gen) chance(p float64) bool { return g.rng.Float64() < p }

// money rounds to cents.
func money(v float64) float64 { return math.Round(v*100) / 100 }

// --- catalog ---

type product struct {
	SKU            string  `json:"sku"`
	Name           string  `json:"name"`
	Price          float64 `json:"price"`
	Status         int     `json:"status"`
	Visibility     int     `json:"visibility"`
	TypeID         string  `json:"type_id"`
	AttributeSetID int     `json:"attribute_set_id"`
	Weight         float64 `json:"weight"`
}

type priceChanged struct {
	SKU     string  `json:"sku"`
	Price   float64 `json:"price"`
	StoreID int     `json:"store_id"`
}

var (
	adjectives = []string{"Classic", "Organic", "Slim-Fit", "Waterproof", "Vintage", "Merino", "Recycled", "Lightweight", "Heavy-Duty", "Premium"}
	nouns      = []string{"T-Shirt", "Hoodie", "Sneaker", "Backpack", "Water Bottle", "Desk Lamp", "Yoga Mat", "Rain Jacket", "Coffee Mug", "Wool Socks"}
	colours    = []string{"Black", "Navy", "Olive", "Sand", "Red", "White"}
)

func (g *gen) productName() string {
	return g.pick(adjectives) + " " + g.pick(nouns) + " - " + g.pick(colours)
}

func (g *gen) products() []*product {
	n := max(g.cfg.SKUs, 0)
	ps := make([]*product, n)
	for i := range ps {
		ps[i] = &product{
			SKU:            fmt.Sprintf("SKU-%05d", i+1),
			Name:           g.productName(),
			Price:          money(4.99 + g.rng.Float64()*295),
			Status:         1,
			Visibility:     4,
			TypeID:         "simple",
			AttributeSetID: 4,
			Weight:         money(0.1 + g.rng.Float64()*5),
		}
	}
	return ps
}

// catalogStream creates every product once (in random order) and interleaves
// updates and price changes of products already created.
func (g *gen) catalogStream(ps []*product) []*plan {
	order := g.rng.Perm(len(ps))
	var created []*product
	updates := max(g.cfg.CatalogUpdates, 0)
	var out []*plan
	for len(order) > 0 || (updates > 0 && len(created) > 0) {
		if len(order) > 0 && (len(created) == 0 || g.rng.IntN(len(order)+updates) < len(order)) {
			p := ps[order[0]]
			order = order[1:]
			created = append(created, p)
			out = append(out, g.event(topics.TopicCatalog, SourceCatalog, TypeProductCreated, p.SKU, *p))
			continue
		}
		updates--
		p := created[g.rng.IntN(len(created))]
		if g.chance(0.5) {
			p.Price = money(p.Price * (0.8 + 0.4*g.rng.Float64()))
			out = append(out, g.event(topics.TopicCatalog, SourceCatalog, TypePriceChanged, p.SKU, priceChanged{SKU: p.SKU, Price: p.Price}))
			continue
		}
		switch g.rng.IntN(3) {
		case 0:
			p.Name = g.productName()
		case 1:
			p.Status = 3 - p.Status // enable <-> disable
		default:
			p.Price = money(p.Price * (0.8 + 0.4*g.rng.Float64()))
		}
		out = append(out, g.event(topics.TopicCatalog, SourceCatalog, TypeProductUpdated, p.SKU, *p))
	}
	return out
}

// --- inventory ---

type stockUpdated struct {
	SKU        string `json:"sku"`
	SourceCode string `json:"source_code"`
	Quantity   int    `json:"quantity"`
	Status     int    `json:"status"`
}

type thresholdBreached struct {
	SKU        string `json:"sku"`
	SourceCode string `json:"source_code"`
	Quantity   int    `json:"quantity"`
	Threshold  int    `json:"threshold"`
}

// inventoryStream writes StockUpdates stock levels, skewed towards a few hot
// SKUs, and a threshold.breached whenever a level falls to lowStock or below.
func (g *gen) inventoryStream(ps []*product) []*plan {
	if len(ps) == 0 {
		return nil
	}
	qty := make(map[string]int, len(ps))
	var out []*plan
	for range max(g.cfg.StockUpdates, 0) {
		u := g.rng.Float64()
		sku := ps[int(u*u*float64(len(ps)))].SKU // hot SKUs get most updates
		old, seen := qty[sku]
		var q int
		switch {
		case !seen:
			q = g.rng.IntN(200)
		case g.chance(0.08):
			q = g.rng.IntN(lowStock + 1) // a run on the product
		default:
			q = max(0, old+g.rng.IntN(41)-20)
		}
		qty[sku] = q
		status := 0
		if q > 0 {
			status = 1
		}
		out = append(out, g.event(topics.TopicInventory, SourceInventory, TypeStockUpdated, sku,
			stockUpdated{SKU: sku, SourceCode: "default", Quantity: q, Status: status}))
		if q <= lowStock && (!seen || old > lowStock) {
			out = append(out, g.event(topics.TopicInventory, SourceInventory, TypeThresholdBreached, sku,
				thresholdBreached{SKU: sku, SourceCode: "default", Quantity: q, Threshold: lowStock}))
		}
	}
	return out
}

// --- customers ---

type customer struct {
	ID        string `json:"customer_id"`
	Email     string `json:"email"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
}

type tierChanged struct {
	CustomerID string `json:"customer_id"`
	FromTier   string `json:"from_tier"`
	ToTier     string `json:"to_tier"`
}

type segmentUpdated struct {
	CustomerID string   `json:"customer_id"`
	Segments   []string `json:"segments"`
}

var (
	firstNames = []string{"Anna", "Ben", "Chloe", "David", "Emma", "Finn", "Greta", "Hugo", "Ines", "Jonas", "Klara", "Luca"}
	lastNames  = []string{"Schmidt", "Rossi", "Dubois", "Novak", "Jansen", "Garcia", "Nielsen", "Weber", "Costa", "Lindqvist"}
	tiers      = []string{"bronze", "silver", "gold", "platinum"}
	segments   = []string{"newsletter", "vip", "frequent-buyer", "cart-abandoner", "sale-hunter", "new-customer"}
)

func (g *gen) customers() []*customer {
	cs := make([]*customer, max(g.cfg.Customers, 0))
	for i := range cs {
		first, last := g.pick(firstNames), g.pick(lastNames)
		cs[i] = &customer{
			ID:        fmt.Sprintf("CUST-%05d", i+1),
			Email:     fmt.Sprintf("%s.%s.%d@example.com", strings.ToLower(first), strings.ToLower(last), i+1),
			FirstName: first,
			LastName:  last,
		}
	}
	return cs
}

// customerStream creates each customer, then moves some up loyalty tiers and
// re-segments some; customers interleave, each in its own order.
func (g *gen) customerStream(cs []*customer) []*plan {
	lists := make([][]*plan, len(cs))
	for i, c := range cs {
		evs := []*plan{g.event(topics.TopicCustomer, SourceCustomer, TypeCustomerCreated, c.ID, *c)}
		tier := 0
		for tier < len(tiers)-1 && g.chance(0.4) {
			evs = append(evs, g.event(topics.TopicCustomer, SourceCustomer, TypeLoyaltyTier, c.ID,
				tierChanged{CustomerID: c.ID, FromTier: tiers[tier], ToTier: tiers[tier+1]}))
			tier++
		}
		if g.chance(0.5) {
			var segs []string
			for _, s := range segments {
				if g.chance(0.3) {
					segs = append(segs, s)
				}
			}
			if len(segs) == 0 {
				segs = []string{"newsletter"}
			}
			evs = append(evs, g.event(topics.TopicCustomer, SourceCustomer, TypeSegmentUpdated, c.ID,
				segmentUpdated{CustomerID: c.ID, Segments: segs}))
		}
		lists[i] = evs
	}
	return g.merge(lists)
}

// --- orders ---

type orderItem struct {
	SKU   string  `json:"sku"`
	Qty   int     `json:"qty"`
	Price float64 `json:"price"`
}

type orderPlaced struct {
	OrderID    string      `json:"order_id"`
	CustomerID string      `json:"customer_id"`
	Email      string      `json:"email"`
	GrandTotal float64     `json:"grand_total"`
	Currency   string      `json:"currency"`
	Items      []orderItem `json:"items"`
}

type paymentCaptured struct {
	OrderID       string  `json:"order_id"`
	Amount        float64 `json:"amount"`
	Currency      string  `json:"currency"`
	Method        string  `json:"method"`
	TransactionID string  `json:"transaction_id"`
}

type shipmentUpdated struct {
	OrderID        string `json:"order_id"`
	ShipmentID     string `json:"shipment_id"`
	Status         string `json:"status"`
	Carrier        string `json:"carrier"`
	TrackingNumber string `json:"tracking_number"`
}

type returnItem struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

type returnInitiated struct {
	OrderID  string       `json:"order_id"`
	ReturnID string       `json:"return_id"`
	Reason   string       `json:"reason"`
	Items    []returnItem `json:"items"`
}

var (
	carriers      = []string{"DHL", "UPS", "DPD", "GLS"}
	returnReasons = []string{"wrong size", "damaged in transit", "changed mind", "not as described"}
)

// orderStream places Orders orders and takes each through payment (most),
// shipment created → in_transit → delivered or exception, and sometimes a
// return; orders interleave, each in its own order.
func (g *gen) orderStream(ps []*product, cs []*customer) []*plan {
	n := max(g.cfg.Orders, 0)
	if len(ps) == 0 || len(cs) == 0 {
		return nil
	}
	lists := make([][]*plan, n)
	for i := range n {
		id := fmt.Sprintf("ORD-%06d", i+1)
		c := cs[g.rng.IntN(len(cs))]
		var items []orderItem
		cents := 0
		for _, j := range g.rng.Perm(len(ps))[:1+g.rng.IntN(min(4, len(ps)))] {
			it := orderItem{SKU: ps[j].SKU, Qty: 1 + g.rng.IntN(3), Price: ps[j].Price}
			cents += it.Qty * int(math.Round(it.Price*100))
			items = append(items, it)
		}
		total := float64(cents) / 100
		evs := []*plan{g.event(topics.TopicOrder, SourceOrder, TypeOrderPlaced, id, orderPlaced{
			OrderID: id, CustomerID: c.ID, Email: c.Email, GrandTotal: total, Currency: "EUR", Items: items,
		})}
		lists[i] = evs
		if !g.chance(0.9) {
			continue
		}
		lists[i] = append(lists[i], g.event(topics.TopicOrder, SourceOrder, TypePaymentCaptured, id, paymentCaptured{
			OrderID: id, Amount: total, Currency: "EUR", Method: "card", TransactionID: fmt.Sprintf("txn_%012x", g.rng.Uint64()>>16),
		}))
		if !g.chance(0.85) {
			continue
		}
		ship := shipmentUpdated{
			OrderID: id, ShipmentID: "SHP-" + strings.TrimPrefix(id, "ORD-") + "-1",
			Carrier: g.pick(carriers), TrackingNumber: fmt.Sprintf("%012d", g.rng.Int64N(1e12)),
		}
		delivered := false
		for _, st := range []string{"created", "in_transit", "delivered"} {
			if st == "delivered" && g.chance(0.1) {
				st = "exception"
			}
			ship.Status = st
			lists[i] = append(lists[i], g.event(topics.TopicOrder, SourceOrder, TypeShipmentUpdated, id, ship))
			if st == "delivered" {
				delivered = true
			}
			if st == "exception" || !g.chance(0.9) {
				break
			}
		}
		if delivered && g.chance(0.15) {
			it := items[g.rng.IntN(len(items))]
			lists[i] = append(lists[i], g.event(topics.TopicOrder, SourceOrder, TypeReturnInitiated, id, returnInitiated{
				OrderID: id, ReturnID: "RMA-" + strings.TrimPrefix(id, "ORD-"), Reason: g.pick(returnReasons),
				Items: []returnItem{{SKU: it.SKU, Qty: 1}},
			}))
		}
	}
	return g.merge(lists)
}

// --- duplicates, stale versions, poison ---

// fencedTypes are the types a version-fenced group applies, per topic: a
// stale copy is only interesting for them.
var fencedTypes = map[string][]string{
	topics.TopicCatalog:   {TypeProductCreated, TypeProductUpdated, TypePriceChanged},
	topics.TopicInventory: {TypeStockUpdated},
}

// streamRef is the position of a base event: stream s, index i.
type streamRef struct{ s, i int }

// insertion is a record woven into a stream after base event at.
type insertion struct {
	at int
	p  *plan
}

// addMarks weaves duplicates, stale copies and poison records into the
// streams, in place. Counts are exact: round(rate × eligible), at least one
// when the rate is positive and something is eligible.
func (g *gen) addMarks(streams [][]*plan) {
	type ref = streamRef
	var all []ref
	var eligible []ref
	older := make(map[ref][]*plan) // for each stale-eligible event: the earlier fenced events of its key
	for s, st := range streams {
		history := make(map[string][]*plan)
		for i, p := range st {
			all = append(all, ref{s, i})
			if !contains(fencedTypes[p.topic], p.typ) {
				continue
			}
			if h := history[p.key]; len(h) > 0 {
				eligible = append(eligible, ref{s, i})
				older[ref{s, i}] = h
			}
			// Appending never changes the elements a snapshot in older sees.
			history[p.key] = append(history[p.key], p)
		}
	}

	ins := make([][]insertion, len(streams))
	later := func(r ref) int { return min(r.i+1+g.rng.IntN(20), len(streams[r.s])-1) }

	for _, r := range g.sample(all, g.cfg.DuplicateRate) {
		orig := streams[r.s][r.i]
		d := *orig
		d.dup = true
		ins[r.s] = append(ins[r.s], insertion{later(r), &d})
	}
	for _, r := range g.sample(eligible, g.cfg.StaleRate) {
		h := older[r]
		old := h[g.rng.IntN(len(h))]
		st := *old
		st.stale = true
		st.id = g.newID(old.at)
		st.value = envelope(st.id, old.source, old.typ, old.key, old.at, old.version, old.data)
		ins[r.s] = append(ins[r.s], insertion{later(r), &st})
	}
	for _, r := range g.sample(all, g.cfg.PoisonRate) {
		ins[r.s] = append(ins[r.s], insertion{r.i, g.poison(streams[r.s][r.i])})
	}

	for s, st := range streams {
		if len(ins[s]) == 0 {
			continue
		}
		byPos := make(map[int][]*plan)
		for _, in := range ins[s] {
			byPos[in.at] = append(byPos[in.at], in.p)
		}
		out := make([]*plan, 0, len(st)+len(ins[s]))
		for i, p := range st {
			out = append(out, p)
			out = append(out, byPos[i]...)
		}
		streams[s] = out
	}
}

// sample picks round(rate × len(from)) distinct elements (at least one when
// rate > 0), in their original order.
func (g *gen) sample(from []streamRef, rate float64) []streamRef {
	if rate <= 0 || len(from) == 0 {
		return nil
	}
	n := max(1, int(math.Round(rate*float64(len(from)))))
	n = min(n, len(from))
	picked := g.rng.Perm(len(from))[:n]
	mark := make([]bool, len(from))
	for _, i := range picked {
		mark[i] = true
	}
	out := make([]streamRef, 0, n)
	for i, r := range from {
		if mark[i] {
			out = append(out, r)
		}
	}
	return out
}

// poisonKinds are the poison variants per topic, besides the common ones.
var poisonKinds = map[string][]string{
	topics.TopicCatalog:   {PoisonMissingSKU, PoisonNegativePrice},
	topics.TopicInventory: {PoisonMissingVersion, PoisonMissingSKU},
	topics.TopicOrder:     {PoisonMissingOrderID},
	topics.TopicCustomer:  {PoisonMissingCustomerID},
}

// poison returns a poison record on anchor's topic and key. Schema failures
// use a type every group of the topic applies (product created, price
// changed, stock updated, order placed, customer created), so each group
// must dead-letter them rather than filter them out.
func (g *gen) poison(anchor *plan) *plan {
	kinds := append([]string{PoisonInvalidJSON, PoisonNotCloudEvent, PoisonUnknownType}, poisonKinds[anchor.topic]...)
	kind := g.pick(kinds)
	at := g.tick()
	p := &plan{topic: anchor.topic, key: anchor.key, poisonKind: kind, source: anchor.source, at: at}
	id := g.newID(at)
	domain, _, _ := strings.Cut(strings.TrimPrefix(anchor.topic, "commerce."), ".")
	full := func(typ string, version int64, data any) {
		raw, err := json.Marshal(data)
		if err != nil {
			panic(fmt.Sprintf("devstack: marshal poison data: %v", err))
		}
		p.id, p.typ, p.version = id, typ, version
		p.value = envelope(id, anchor.source, typ, anchor.key, at, version, raw)
	}
	switch kind {
	case PoisonInvalidJSON:
		valid := envelope(id, anchor.source, anchor.typ, anchor.key, at, anchor.version, anchor.data)
		p.value = valid[:len(valid)/2]
	case PoisonNotCloudEvent:
		p.value = fmt.Appendf(nil, `{"subject":%q,"note":"not a CloudEvent","nonce":%q}`, anchor.key, id)
	case PoisonUnknownType:
		full(domain+".bogus.happened", anchor.version, map[string]any{"subject": anchor.key})
	case PoisonMissingSKU:
		if anchor.topic == topics.TopicInventory {
			full(TypeStockUpdated, anchor.version, map[string]any{"source_code": "default", "quantity": 3, "status": 1})
		} else {
			full(TypeProductCreated, anchor.version, map[string]any{"name": "Nameless", "price": 9.99, "status": 1, "visibility": 4, "type_id": "simple", "attribute_set_id": 4, "weight": 1})
		}
	case PoisonNegativePrice:
		full(TypePriceChanged, anchor.version, map[string]any{"sku": anchor.key, "price": -9.99, "store_id": 0})
	case PoisonMissingVersion:
		full(TypeStockUpdated, 0, stockUpdated{SKU: anchor.key, SourceCode: "default", Quantity: 7, Status: 1})
	case PoisonMissingOrderID:
		full(TypeOrderPlaced, anchor.version, map[string]any{"customer_id": "CUST-00001", "email": "x@example.com", "grand_total": 10, "currency": "EUR", "items": []any{}})
	case PoisonMissingCustomerID:
		full(TypeCustomerCreated, anchor.version, map[string]any{"email": "nobody@example.com", "first_name": "No", "last_name": "Body"})
	}
	return p
}

// merge interleaves lists at random, keeping each list's order: the next
// record comes from a list chosen with probability proportional to what it
// has left.
func (g *gen) merge(lists [][]*plan) []*plan {
	left := 0
	for _, l := range lists {
		left += len(l)
	}
	out := make([]*plan, 0, left)
	pos := make([]int, len(lists))
	for left > 0 {
		n := g.rng.IntN(left)
		for i, l := range lists {
			rem := len(l) - pos[i]
			if n < rem {
				out = append(out, l[pos[i]])
				pos[i]++
				break
			}
			n -= rem
		}
		left--
	}
	return out
}
