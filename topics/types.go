package topics

import (
	"fmt"
	"strings"
)

// SpecVersion is the only CloudEvents specversion shopstream accepts.
const SpecVersion = "1.0"

// Catalog event types (topic commerce.catalog.v1, subject = SKU).
const (
	TypeProductCreated = "catalog.product.created"
	TypeProductUpdated = "catalog.product.updated"
	TypePriceChanged   = "catalog.price.changed"
	TypeStockAdjusted  = "catalog.stock.adjusted"
)

// Inventory event types (topic commerce.inventory.v1, subject = SKU).
const (
	TypeStockUpdated       = "inventory.stock.updated"
	TypeThresholdBreached  = "inventory.threshold.breached"
	TypeBackorderTriggered = "inventory.backorder.triggered"
)

// Order event types (topic commerce.order.v1, subject = order id).
const (
	TypeOrderPlaced     = "order.placed"
	TypePaymentCaptured = "order.payment.captured"
	TypeShipmentUpdated = "order.shipment.updated"
	TypeReturnInitiated = "order.return.initiated"
)

// Customer event types (topic commerce.customer.v1, subject = customer id).
const (
	TypeCustomerCreated    = "customer.created"
	TypeLoyaltyTierChanged = "customer.loyalty_tier.changed"
	TypeSegmentUpdated     = "customer.segment.updated"
)

// domainInfo is the static description of one domain.
type domainInfo struct {
	domain Domain
	topic  string
	// keyField is the payload field that must equal the subject.
	keyField string
	// versionRequired reports whether the "version" attribute is mandatory.
	versionRequired bool
	types           []string
}

var (
	catalogInfo = domainInfo{
		domain: DomainCatalog, topic: TopicCatalog, keyField: "sku", versionRequired: true,
		types: []string{TypeProductCreated, TypeProductUpdated, TypePriceChanged, TypeStockAdjusted},
	}
	inventoryInfo = domainInfo{
		domain: DomainInventory, topic: TopicInventory, keyField: "sku", versionRequired: true,
		types: []string{TypeStockUpdated, TypeThresholdBreached, TypeBackorderTriggered},
	}
	orderInfo = domainInfo{
		domain: DomainOrder, topic: TopicOrder, keyField: "order_id",
		types: []string{TypeOrderPlaced, TypePaymentCaptured, TypeShipmentUpdated, TypeReturnInitiated},
	}
	customerInfo = domainInfo{
		domain: DomainCustomer, topic: TopicCustomer, keyField: "customer_id",
		types: []string{TypeCustomerCreated, TypeLoyaltyTierChanged, TypeSegmentUpdated},
	}
)

// info returns the description of d, or nil if d is not one of the four domains.
func info(d Domain) *domainInfo {
	switch d {
	case DomainCatalog:
		return &catalogInfo
	case DomainInventory:
		return &inventoryInfo
	case DomainOrder:
		return &orderInfo
	case DomainCustomer:
		return &customerInfo
	}
	return nil
}

// lookupType finds the event type named t and returns its name, its domain
// and its position in the list of all types, domain by domain in the order
// of Domains. It does not allocate.
func lookupType(t []byte) (name string, d Domain, index int, ok bool) {
	for _, di := range [...]*domainInfo{&catalogInfo, &inventoryInfo, &orderInfo, &customerInfo} {
		dom := di.domain
		// A cheap look at the prefix; the names are compared in full.
		if len(t) > len(dom) && t[len(dom)] == '.' && t[0] == dom[0] {
			for k, name := range di.types {
				if string(t) == name {
					return name, dom, index + k, true
				}
			}
		}
		index += len(di.types)
	}
	return "", "", 0, false
}

// Domains returns the four domains in a fixed order: catalog, inventory,
// order, customer. The caller may modify the returned slice.
func Domains() []Domain {
	return []Domain{DomainCatalog, DomainInventory, DomainOrder, DomainCustomer}
}

// DomainOf returns the domain an event type belongs to, and false if
// eventType is not one of the known types.
func DomainOf(eventType string) (Domain, bool) {
	// The prefix before the first dot names the domain; the type must then be
	// listed in that domain.
	i := strings.IndexByte(eventType, '.')
	if i < 0 {
		return "", false
	}
	d := Domain(eventType[:i])
	di := info(d)
	if di == nil {
		return "", false
	}
	for _, t := range di.types {
		if t == eventType {
			return d, true
		}
	}
	return "", false
}

// Types returns the event types of domain d in contract order, or nil if d is
// unknown. The caller may modify the returned slice.
func Types(d Domain) []string {
	di := info(d)
	if di == nil {
		return nil
	}
	return append([]string(nil), di.types...)
}

// DefaultTopic returns the default (contract) topic name of domain d, or ""
// if d is unknown.
func DefaultTopic(d Domain) string {
	if di := info(d); di != nil {
		return di.topic
	}
	return ""
}

// ParseDomain parses a domain name ("catalog", "inventory", "order",
// "customer"), ignoring case and surrounding space.
func ParseDomain(s string) (Domain, error) {
	d := Domain(strings.ToLower(strings.TrimSpace(s)))
	if info(d) == nil {
		return "", fmt.Errorf("topics: unknown domain %q (want catalog, inventory, order or customer)", s)
	}
	return d, nil
}
