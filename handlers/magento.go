package handlers

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

// MagentoConfig configures the Magento / Adobe Commerce REST client.
type MagentoConfig struct {
	// BaseURL is the store's base URL (setting magento-url); calls go to
	// <BaseURL>/rest/V1/....
	BaseURL string
	// Token is the integration's bearer token (setting magento-token).
	Token string
	// Timeout bounds one request, response body included; 0 means 10s.
	Timeout time.Duration
	// RateLimit is the most requests per second sent to Magento, shared by
	// the catalog and inventory handlers; 0 means unlimited.
	RateLimit float64
	// Burst is how many requests may go at once under RateLimit; 0 means 1.
	Burst int
	// Client, if set, replaces the default pooled client.
	Client *http.Client
}

// Magento applies catalog and inventory events through Magento's REST API.
// It is safe for concurrent use.
type Magento struct {
	base  string // without trailing slash
	token string
	sink  *sink
}

// NewMagento validates cfg and returns a client. Every problem is reported,
// each naming its setting; the token is never quoted.
func NewMagento(cfg MagentoConfig) (*Magento, error) {
	var errs []error
	base, err := baseURL(cfg.BaseURL)
	if err != nil {
		errs = append(errs, fmt.Errorf("magento-url: %w", err))
	}
	token := strings.TrimSpace(cfg.Token)
	switch {
	case token == "":
		errs = append(errs, errors.New("magento-token: required"))
	case strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		errs = append(errs, errors.New("magento-token: contains whitespace or control characters"))
	}
	s, err := newSink("magento", cfg.Client, cfg.Timeout, cfg.RateLimit, cfg.Burst, token)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Magento{base: base, token: token, sink: s}, nil
}

// baseURL checks raw as parseURL does, rejects a query or fragment, and
// returns it without a trailing slash.
func baseURL(raw string) (string, error) {
	u, err := parseURL(raw)
	if err != nil {
		return "", err
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("must not have a query or fragment")
	}
	return strings.TrimRight(raw, "/"), nil
}

// Catalog returns the handler of the catalog group:
//
//   - catalog.product.created, catalog.product.updated: PUT /rest/V1/products/{sku}
//   - catalog.price.changed: POST /rest/V1/products/base-prices; an item that
//     Magento rejects (it answers 200 with the failures) is a permanent error.
//   - catalog.stock.adjusted: POST /rest/V1/inventory/source-items
//
// Any other type is processor.ErrFiltered.
func (m *Magento) Catalog() processor.Handler {
	return processor.HandlerFunc(func(ctx context.Context, ev *topics.Event) error {
		switch ev.Type {
		case "catalog.product.created", "catalog.product.updated":
			return m.saveProduct(ctx, ev)
		case "catalog.price.changed":
			return m.updatePrice(ctx, ev)
		case "catalog.stock.adjusted":
			return m.saveSourceItem(ctx, ev)
		default:
			return processor.ErrFiltered
		}
	})
}

// Inventory returns the handler of the inventory group:
// inventory.stock.updated is POST /rest/V1/inventory/source-items.
// inventory.threshold.breached and inventory.backorder.triggered are
// informational for Magento, which derives them from the quantities itself,
// so they are processor.ErrFiltered, as is any other type.
func (m *Magento) Inventory() processor.Handler {
	return processor.HandlerFunc(func(ctx context.Context, ev *topics.Event) error {
		if ev.Type == "inventory.stock.updated" {
			return m.saveSourceItem(ctx, ev)
		}
		return processor.ErrFiltered
	})
}

// productData is the data of catalog.product.created and .updated.
type productData struct {
	SKU            string   `json:"sku"`
	Name           string   `json:"name"`
	Price          *float64 `json:"price"`
	Status         int      `json:"status"`
	Visibility     int      `json:"visibility"`
	TypeID         string   `json:"type_id"`
	AttributeSetID int      `json:"attribute_set_id"`
	Weight         *float64 `json:"weight"`
}

func (p *productData) key() string { return p.SKU }

func (p *productData) check() error {
	switch {
	case p.Name == "":
		return errors.New("name is required")
	case p.Price == nil:
		return errors.New("price is required")
	case p.Status != 1 && p.Status != 2:
		return fmt.Errorf("status must be 1 (enabled) or 2 (disabled), got %d", p.Status)
	case p.Visibility < 0 || p.Visibility > 4:
		return fmt.Errorf("visibility must be 1 to 4, got %d", p.Visibility)
	}
	return nil
}

// priceData is the data of catalog.price.changed.
type priceData struct {
	SKU     string   `json:"sku"`
	Price   *float64 `json:"price"`
	StoreID int      `json:"store_id"`
}

func (p *priceData) key() string { return p.SKU }

func (p *priceData) check() error {
	if p.Price == nil {
		return errors.New("price is required")
	}
	return nil
}

// stockData is the data of catalog.stock.adjusted and inventory.stock.updated.
type stockData struct {
	SKU        string   `json:"sku"`
	SourceCode string   `json:"source_code"`
	Quantity   *float64 `json:"quantity"`
	Status     *int     `json:"status"`
}

func (p *stockData) key() string { return p.SKU }

func (p *stockData) check() error {
	switch {
	case p.SourceCode == "":
		return errors.New("source_code is required")
	case p.Quantity == nil:
		return errors.New("quantity is required")
	case p.Status == nil || (*p.Status != 0 && *p.Status != 1):
		return errors.New("status must be 0 (out of stock) or 1 (in stock)")
	}
	return nil
}

// payload is the decoded data of an event the Magento handlers apply.
type payload interface {
	key() string // the SKU
	check() error
}

// decode unmarshals ev.Data into p and checks it. Every failure is permanent:
// retrying cannot fix the record. The SKU must equal the subject, the key
// the version fence and per-key ordering are applied on.
func decode(ev *topics.Event, p payload) error {
	err := json.Unmarshal(ev.Data, p)
	if err == nil {
		err = p.check()
	}
	if err == nil && p.key() == "" {
		err = errors.New("sku is required")
	}
	if err == nil && ev.Subject != "" && p.key() != ev.Subject {
		err = fmt.Errorf("sku %q does not match subject %q", p.key(), ev.Subject)
	}
	if err != nil {
		return processor.Permanent(fmt.Errorf("magento: decode %s %s: %w", ev.Type, ev.ID, err))
	}
	return nil
}

// product is catalogProductRepositoryV1's product, the fields we set.
type product struct {
	SKU            string   `json:"sku"`
	Name           string   `json:"name"`
	Price          float64  `json:"price"`
	Status         int      `json:"status"`
	Visibility     int      `json:"visibility"`
	TypeID         string   `json:"type_id"`
	AttributeSetID int      `json:"attribute_set_id"`
	Weight         *float64 `json:"weight,omitempty"`
}

func (m *Magento) saveProduct(ctx context.Context, ev *topics.Event) error {
	var p productData
	if err := decode(ev, &p); err != nil {
		return err
	}
	body := struct {
		Product product `json:"product"`
	}{product{
		SKU:            p.SKU,
		Name:           p.Name,
		Price:          *p.Price,
		Status:         p.Status,
		Visibility:     cmp.Or(p.Visibility, 4),
		TypeID:         cmp.Or(p.TypeID, "simple"),
		AttributeSetID: cmp.Or(p.AttributeSetID, 4),
		Weight:         p.Weight,
	}}
	_, err := m.call(ctx, ev, http.MethodPut, "/rest/V1/products/"+url.PathEscape(p.SKU), body)
	return err
}

// priceUpdateResult is one failed item of a base-prices answer.
type priceUpdateResult struct {
	Message    string   `json:"message"`
	Parameters []string `json:"parameters"`
}

func (m *Magento) updatePrice(ctx context.Context, ev *topics.Event) error {
	var p priceData
	if err := decode(ev, &p); err != nil {
		return err
	}
	type price struct {
		Price   float64 `json:"price"`
		StoreID int     `json:"store_id"`
		SKU     string  `json:"sku"`
	}
	body := struct {
		Prices []price `json:"prices"`
	}{[]price{{Price: *p.Price, StoreID: p.StoreID, SKU: p.SKU}}}
	const path = "/rest/V1/products/base-prices"
	resp, err := m.call(ctx, ev, http.MethodPost, path, body)
	if err != nil {
		return err
	}
	// Magento answers 2xx with a JSON array of the items it rejected; []
	// means all applied. Any other 2xx body (a proxy's or a stand-in's "OK",
	// an empty body) is an acceptance: only a listed rejection fails.
	var failed []priceUpdateResult
	if err := json.Unmarshal(resp, &failed); err != nil || len(failed) == 0 {
		return nil
	}
	msgs := make([]string, len(failed))
	for i, f := range failed {
		msgs[i] = f.Message
		if len(f.Parameters) > 0 {
			msgs[i] += " [" + strings.Join(f.Parameters, ", ") + "]"
		}
	}
	return processor.Permanent(fmt.Errorf("magento: POST %s: %d price(s) rejected: %s",
		path, len(failed), m.sink.quote([]byte(strings.Join(msgs, "; ")))))
}

func (m *Magento) saveSourceItem(ctx context.Context, ev *topics.Event) error {
	var p stockData
	if err := decode(ev, &p); err != nil {
		return err
	}
	type sourceItem struct {
		SKU        string  `json:"sku"`
		SourceCode string  `json:"source_code"`
		Quantity   float64 `json:"quantity"`
		Status     int     `json:"status"`
	}
	body := struct {
		SourceItems []sourceItem `json:"sourceItems"`
	}{[]sourceItem{{SKU: p.SKU, SourceCode: p.SourceCode, Quantity: *p.Quantity, Status: *p.Status}}}
	_, err := m.call(ctx, ev, http.MethodPost, "/rest/V1/inventory/source-items", body)
	return err
}

// call sends body as JSON to the Magento path and returns the answer's body.
func (m *Magento) call(ctx context.Context, ev *topics.Event, method, path string, body any) ([]byte, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, processor.Permanent(fmt.Errorf("magento: encode %s: %w", path, err))
	}
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+m.token)
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Accept", "application/json")
	return m.sink.send(ctx, ev, method, m.base+path, data, hdr)
}
