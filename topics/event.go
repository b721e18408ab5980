// Package topics is shopstream's event contract: topic names, the CloudEvents
// envelope, payload types and their JSON Schemas, validation, and the
// dead-letter header names. It imports no other shopstream package.
package topics

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Domain is one of the four event streams; each has one topic.
type Domain string

// The four domains.
const (
	DomainCatalog   Domain = "catalog"
	DomainInventory Domain = "inventory"
	DomainOrder     Domain = "order"
	DomainCustomer  Domain = "customer"
)

// Default topic names (contract).
const (
	TopicCatalog   = "commerce.catalog.v1"
	TopicInventory = "commerce.inventory.v1"
	TopicOrder     = "commerce.order.v1"
	TopicCustomer  = "commerce.customer.v1"
)

// DLQSuffix is appended to a topic's name to name its dead-letter topic.
const DLQSuffix = ".dlq"

// DLQTopic returns the dead-letter topic of topic.
func DLQTopic(topic string) string { return topic + DLQSuffix }

// Dead-letter and redrive header names (contract).
const (
	HeaderOriginalTopic     = "shopstream.original.topic"
	HeaderOriginalPartition = "shopstream.original.partition"
	HeaderOriginalOffset    = "shopstream.original.offset"
	HeaderOriginalTimestamp = "shopstream.original.timestamp"
	HeaderGroup             = "shopstream.group"
	HeaderError             = "shopstream.error"
	HeaderErrorClass        = "shopstream.error.class"
	HeaderAttempts          = "shopstream.attempts"
	HeaderFailedAt          = "shopstream.failed.at"
	HeaderRedriveGroup      = "shopstream.redrive.group"
	HeaderRedriveCount      = "shopstream.redrive.count"
	// HeaderValueOmitted (an extension of the contract) marks a dead letter
	// written without the original's value and headers because, with them,
	// it was larger than Kafka accepts; it holds the original value's size
	// in bytes. The original stays readable at the original topic,
	// partition and offset, from which a redrive reads it back.
	HeaderValueOmitted = "shopstream.value.omitted"
)

// Values of HeaderErrorClass (contract).
const (
	ErrorClassPoison           = "poison"
	ErrorClassPermanent        = "permanent"
	ErrorClassRetriesExhausted = "retries_exhausted"
)

// Event is a CloudEvents 1.0 event in JSON structured mode, with shopstream's
// "version" extension attribute.
//
// An Event from Decode aliases the record value it was decoded from: Raw is
// that value and Data a sub-slice of it (with no spare capacity), valid as
// long as the value is (for a processor's handler: until Handle returns).
// The string attributes are copies, so that keeping one (a subject as a map
// key, say) neither keeps a fetched batch alive nor changes when its memory
// is reused.
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            time.Time       `json:"time"`
	Version         int64           `json:"version,omitempty"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data"`

	// Raw is the record value exactly as it was read; webhook sinks post it unchanged.
	Raw []byte `json:"-"`
}

// PoisonError says why a record can never be processed: it is not valid
// JSON, not a CloudEvent, of an unknown type, or its data fails the type's
// schema. Poison records go to the dead-letter topic at once.
type PoisonError struct {
	Reason string
}

// Error returns "poison record: " followed by the reason.
func (e *PoisonError) Error() string { return "poison record: " + e.Reason }

// IsPoison reports whether err is or wraps a *PoisonError.
func IsPoison(err error) bool {
	var p *PoisonError
	return errors.As(err, &p)
}

func poisonf(format string, args ...any) error {
	return &PoisonError{Reason: fmt.Sprintf(format, args...)}
}
