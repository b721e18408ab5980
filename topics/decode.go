package topics

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// wireEvent is the envelope as read from a record. Optional attributes are
// pointers or raw values so that "absent", "null" and "wrong type" can be told
// apart.
type wireEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            *string         `json:"time"`
	Version         json.RawMessage `json:"version"`
	DataContentType *string         `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// Decode parses and validates a record value of domain d and returns its
// event, with Raw set to value (not copied: the caller must not modify value
// afterwards).
//
// Every way a record can be unusable yields a *PoisonError whose Reason names
// the offending attribute or field: value is not valid JSON or not a JSON
// object; specversion is not "1.0"; id, source, type or subject is missing or
// empty; type is unknown or belongs to another domain; time is present but not
// RFC 3339; version is missing or below 1 on catalog and inventory, or present
// anywhere and not an integer >= 1; datacontenttype is present and not
// application/json (parameters such as charset are allowed); data is missing
// or null, or fails the type's JSON Schema; the payload's key field (sku,
// order_id or customer_id) differs from subject; key is non-empty and differs
// from subject. An empty key is accepted: subject is the ordering key. JSON
// null for time, version or datacontenttype counts as absent.
//
// A non-poison error means the caller is at fault or the package is broken:
// d is not one of the four domains, or the embedded schemas fail to compile.
func Decode(d Domain, key, value []byte) (*Event, error) {
	di := info(d)
	if di == nil {
		return nil, fmt.Errorf("topics: Decode: unknown domain %q", string(d))
	}

	var w wireEvent
	if err := json.Unmarshal(value, &w); err != nil {
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return nil, poisonf("invalid JSON: %v", err)
		}
		if te.Field == "" || !isObject(value) {
			return nil, poisonf("not a JSON object: got %s", te.Value)
		}
		return nil, poisonf("%s: got %s, want string", te.Field, te.Value)
	}
	if !isObject(value) {
		return nil, poisonf("not a JSON object: got null")
	}

	if w.SpecVersion != SpecVersion {
		if w.SpecVersion == "" {
			return nil, poisonf("specversion: missing")
		}
		return nil, poisonf("specversion: got %q, want %q", clip(w.SpecVersion), SpecVersion)
	}
	switch {
	case w.ID == "":
		return nil, poisonf("id: missing or empty")
	case w.Source == "":
		return nil, poisonf("source: missing or empty")
	case w.Type == "":
		return nil, poisonf("type: missing or empty")
	case w.Subject == "":
		return nil, poisonf("subject: missing or empty")
	}
	td, ok := DomainOf(w.Type)
	if !ok {
		return nil, poisonf("type: %q is unknown", clip(w.Type))
	}
	if td != d {
		return nil, poisonf("type: %q belongs to domain %s, not %s", w.Type, td, d)
	}
	if len(key) > 0 && string(key) != w.Subject {
		return nil, poisonf("key: record key %q differs from subject %q", clip(string(key)), clip(w.Subject))
	}

	ev := &Event{
		SpecVersion: w.SpecVersion,
		ID:          w.ID,
		Source:      w.Source,
		Type:        w.Type,
		Subject:     w.Subject,
		Data:        w.Data,
		Raw:         value,
	}
	if w.Time != nil {
		t, err := time.Parse(time.RFC3339, *w.Time)
		if err != nil {
			return nil, poisonf("time: %q is not RFC 3339", clip(*w.Time))
		}
		ev.Time = t
	}

	v, present, err := parseVersion(w.Version)
	if err != nil {
		return nil, err
	}
	if !present && di.versionRequired {
		return nil, poisonf("version: missing (required on %s events)", d)
	}
	ev.Version = v

	if w.DataContentType != nil {
		if !isJSONContentType(*w.DataContentType) {
			return nil, poisonf("datacontenttype: got %q, want application/json", clip(*w.DataContentType))
		}
		ev.DataContentType = *w.DataContentType
	}

	if len(w.Data) == 0 {
		return nil, poisonf("data: missing")
	}
	if string(w.Data) == "null" {
		return nil, poisonf("data: is null")
	}
	doc, err := decodeData(w.Data)
	if err != nil {
		return nil, err
	}
	if err := validateDoc(w.Type, doc); err != nil {
		return nil, err
	}
	// The schema guarantees an object whose key field is a string.
	obj, _ := doc.(map[string]any)
	if k, _ := obj[di.keyField].(string); k != w.Subject {
		return nil, poisonf("data.%s: %q differs from subject %q", di.keyField, clip(k), clip(w.Subject))
	}
	return ev, nil
}

// isObject reports whether the first non-space byte of a JSON text is '{'.
func isObject(value []byte) bool {
	v := bytes.TrimLeft(value, " \t\r\n")
	return len(v) > 0 && v[0] == '{'
}

// parseVersion reads the version attribute: absent or null, or an integer
// literal >= 1 that fits int64. A float, exponent or string is poison.
func parseVersion(raw json.RawMessage) (v int64, present bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	v, perr := strconv.ParseInt(string(raw), 10, 64)
	if perr != nil {
		return 0, true, poisonf("version: got %s, want an integer", clip(string(raw)))
	}
	if v < 1 {
		return 0, true, poisonf("version: got %d, want >= 1", v)
	}
	return v, true, nil
}

// isJSONContentType accepts application/json with optional parameters
// ("application/json; charset=utf-8"), ignoring case.
func isJSONContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

// timeLayout is RFC 3339 with exactly three fractional digits.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// encodedEvent is the envelope as Encode writes it.
type encodedEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            string          `json:"time,omitempty"`
	Version         int64           `json:"version,omitempty"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data"`
}

// Encode renders ev as a CloudEvents JSON record value. time is written in
// RFC 3339 with milliseconds in ev.Time's own offset (use UTC() for "Z") and
// left out when zero; version and datacontenttype are left out when zero.
// Nil Data is written as null. Encode does not validate: generators and tests
// use it to build poison records too. ev.Raw is ignored.
func Encode(ev *Event) ([]byte, error) {
	w := encodedEvent{
		SpecVersion:     ev.SpecVersion,
		ID:              ev.ID,
		Source:          ev.Source,
		Type:            ev.Type,
		Subject:         ev.Subject,
		Version:         ev.Version,
		DataContentType: ev.DataContentType,
		Data:            ev.Data,
	}
	if !ev.Time.IsZero() {
		if y := ev.Time.Year(); y < 0 || y > 9999 {
			return nil, fmt.Errorf("topics: Encode: time %v: year outside 0000-9999", ev.Time)
		}
		w.Time = ev.Time.Format(timeLayout)
	}
	b, err := json.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("topics: Encode: %w", err)
	}
	return b, nil
}
