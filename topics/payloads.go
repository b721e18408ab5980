package topics

import (
	"encoding/json"
	"errors"
)

// Product status values of ProductUpsert.Status (Magento).
const (
	ProductStatusEnabled  = 1
	ProductStatusDisabled = 2
)

// Source item status values of StockUpdated.Status and StockAdjusted.Status (Magento MSI).
const (
	StockStatusOutOfStock = 0
	StockStatusInStock    = 1
)

// Shipment states of ShipmentUpdated.Status.
const (
	ShipmentCreated   = "created"
	ShipmentInTransit = "in_transit"
	ShipmentDelivered = "delivered"
	ShipmentException = "exception"
)

// ProductUpsert is the payload of catalog.product.created and
// catalog.product.updated. Optional numeric fields whose zero value is
// meaningful are pointers; nil means "not sent".
type ProductUpsert struct {
	SKU            string   `json:"sku"`
	Name           string   `json:"name"`
	Price          float64  `json:"price"`
	Status         int      `json:"status"`
	Visibility     int      `json:"visibility,omitempty"`
	TypeID         string   `json:"type_id,omitempty"`
	AttributeSetID int      `json:"attribute_set_id,omitempty"`
	Weight         *float64 `json:"weight,omitempty"`
}

// PriceChanged is the payload of catalog.price.changed. StoreID nil means the
// global scope was not stated.
type PriceChanged struct {
	SKU     string  `json:"sku"`
	Price   float64 `json:"price"`
	StoreID *int    `json:"store_id,omitempty"`
}

// StockAdjusted is the payload of catalog.stock.adjusted.
type StockAdjusted struct {
	SKU        string  `json:"sku"`
	SourceCode string  `json:"source_code"`
	Quantity   float64 `json:"quantity"`
	Status     int     `json:"status"`
}

// StockUpdated is the payload of inventory.stock.updated.
type StockUpdated struct {
	SKU        string  `json:"sku"`
	SourceCode string  `json:"source_code"`
	Quantity   float64 `json:"quantity"`
	Status     int     `json:"status"`
}

// ThresholdBreached is the payload of inventory.threshold.breached.
type ThresholdBreached struct {
	SKU        string  `json:"sku"`
	SourceCode string  `json:"source_code"`
	Quantity   float64 `json:"quantity"`
	Threshold  float64 `json:"threshold"`
}

// BackorderTriggered is the payload of inventory.backorder.triggered.
type BackorderTriggered struct {
	SKU        string  `json:"sku"`
	OrderID    string  `json:"order_id"`
	Quantity   float64 `json:"quantity"`
	SourceCode string  `json:"source_code,omitempty"`
}

// OrderItem is one line of OrderPlaced.
type OrderItem struct {
	SKU   string  `json:"sku"`
	Qty   float64 `json:"qty"`
	Price float64 `json:"price"`
}

// OrderPlaced is the payload of order.placed.
type OrderPlaced struct {
	OrderID    string      `json:"order_id"`
	CustomerID string      `json:"customer_id"`
	Email      string      `json:"email"`
	GrandTotal float64     `json:"grand_total"`
	Currency   string      `json:"currency"`
	Items      []OrderItem `json:"items"`
}

// PaymentCaptured is the payload of order.payment.captured.
type PaymentCaptured struct {
	OrderID       string  `json:"order_id"`
	Amount        float64 `json:"amount"`
	Currency      string  `json:"currency"`
	Method        string  `json:"method"`
	TransactionID string  `json:"transaction_id,omitempty"`
}

// ShipmentUpdated is the payload of order.shipment.updated. Status is one of
// ShipmentCreated, ShipmentInTransit, ShipmentDelivered, ShipmentException.
type ShipmentUpdated struct {
	OrderID        string `json:"order_id"`
	ShipmentID     string `json:"shipment_id"`
	Status         string `json:"status"`
	Carrier        string `json:"carrier,omitempty"`
	TrackingNumber string `json:"tracking_number,omitempty"`
}

// ReturnItem is one line of ReturnInitiated.
type ReturnItem struct {
	SKU string  `json:"sku"`
	Qty float64 `json:"qty"`
}

// ReturnInitiated is the payload of order.return.initiated.
type ReturnInitiated struct {
	OrderID  string       `json:"order_id"`
	ReturnID string       `json:"return_id"`
	Reason   string       `json:"reason"`
	Items    []ReturnItem `json:"items,omitempty"`
}

// CustomerCreated is the payload of customer.created.
type CustomerCreated struct {
	CustomerID string `json:"customer_id"`
	Email      string `json:"email"`
	FirstName  string `json:"first_name,omitempty"`
	LastName   string `json:"last_name,omitempty"`
}

// LoyaltyTierChanged is the payload of customer.loyalty_tier.changed.
type LoyaltyTierChanged struct {
	CustomerID string `json:"customer_id"`
	FromTier   string `json:"from_tier"`
	ToTier     string `json:"to_tier"`
}

// SegmentUpdated is the payload of customer.segment.updated. Segments is the
// customer's complete new list of segments (possibly empty).
type SegmentUpdated struct {
	CustomerID string   `json:"customer_id"`
	Segments   []string `json:"segments"`
}

// NewPayload returns a pointer to a zero payload of the Go type that carries
// eventType's data (for example *StockUpdated for inventory.stock.updated),
// and false if eventType is unknown.
func NewPayload(eventType string) (any, bool) {
	switch eventType {
	case TypeProductCreated, TypeProductUpdated:
		return &ProductUpsert{}, true
	case TypePriceChanged:
		return &PriceChanged{}, true
	case TypeStockAdjusted:
		return &StockAdjusted{}, true
	case TypeStockUpdated:
		return &StockUpdated{}, true
	case TypeThresholdBreached:
		return &ThresholdBreached{}, true
	case TypeBackorderTriggered:
		return &BackorderTriggered{}, true
	case TypeOrderPlaced:
		return &OrderPlaced{}, true
	case TypePaymentCaptured:
		return &PaymentCaptured{}, true
	case TypeShipmentUpdated:
		return &ShipmentUpdated{}, true
	case TypeReturnInitiated:
		return &ReturnInitiated{}, true
	case TypeCustomerCreated:
		return &CustomerCreated{}, true
	case TypeLoyaltyTierChanged:
		return &LoyaltyTierChanged{}, true
	case TypeSegmentUpdated:
		return &SegmentUpdated{}, true
	}
	return nil, false
}

// DecodeData unmarshals the event's data into v, which must be a non-nil
// pointer (usually the result of NewPayload(e.Type)). Data that does not fit
// v yields a *PoisonError; an unusable v yields the *json.InvalidUnmarshalError
// from encoding/json. For an event returned by Decode, data always fits the
// payload type of its event type.
func (e *Event) DecodeData(v any) error {
	if len(e.Data) == 0 {
		return poisonf("data: missing")
	}
	err := json.Unmarshal(e.Data, v)
	if err == nil {
		return nil
	}
	var inv *json.InvalidUnmarshalError
	if errors.As(err, &inv) {
		return err
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return poisonf("data.%s: cannot decode %s into %s", te.Field, te.Value, te.Type)
	}
	return poisonf("data: %v", err)
}

// Payload decodes the event's data into a new value of its type's payload
// type (see NewPayload) and returns the pointer, for example *StockUpdated.
// It returns a *PoisonError for an unknown type or data that does not fit.
func (e *Event) Payload() (any, error) {
	v, ok := NewPayload(e.Type)
	if !ok {
		return nil, poisonf("type: %q is unknown", clip(e.Type))
	}
	if err := e.DecodeData(v); err != nil {
		return nil, err
	}
	return v, nil
}
