package admin

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/topics"
)

// shopstreamGroupPrefix starts every default group id ("shopstream." +
// short name), as processor.GroupIDPrefix; admin does not import processor.
const shopstreamGroupPrefix = "shopstream."

// DeadLetter is one record of a dead-letter topic with its contract headers
// (DESIGN.md, "Dead letters") parsed. A header that is missing or does not
// parse leaves its field at the zero value (-1 for the original partition
// and offset) and is named in Problems; it never fails the listing.
type DeadLetter struct {
	// Topic, Partition and Offset locate the record on the dead-letter topic.
	Topic     string
	Partition int32
	Offset    int64
	// Timestamp is the dead-letter record's own timestamp.
	Timestamp time.Time
	// Key, Value and Headers are the record as stored: the original key and
	// value, the original headers and the shopstream.* headers, in order.
	// A dead letter written without the original's value (ValueOmitted)
	// holds the original key and only the shopstream.* headers.
	Key     []byte
	Value   []byte
	Headers []Header

	// From shopstream.original.topic, .partition, .offset and .timestamp:
	// where the failed record was read.
	OriginalTopic     string
	OriginalPartition int32
	OriginalOffset    int64
	OriginalTimestamp time.Time
	// Group is shopstream.group: the full id of the group that failed it.
	Group string
	// Error is shopstream.error; ErrorClass is shopstream.error.class:
	// poison, permanent or retries_exhausted.
	Error      string
	ErrorClass string
	// Attempts is shopstream.attempts: handler calls made (0 for poison).
	Attempts int
	// FailedAt is shopstream.failed.at.
	FailedAt time.Time
	// RedriveCount is shopstream.redrive.count: how often the record was
	// redriven before it failed this time (0 if never). A dead letter
	// written without the value (ValueOmitted) does not carry it: the
	// original does.
	RedriveCount int
	// ValueOmitted is set when the record carries shopstream.value.omitted:
	// the processor wrote it without the original's value and own headers,
	// because with them it was larger than Kafka accepts. The original stays
	// at OriginalTopic, OriginalPartition and OriginalOffset, from which
	// Redrive reads it back.
	ValueOmitted bool
	// ValueOmittedBytes is that header's value, the omitted value's size in
	// bytes; -1 if it is not a non-negative decimal integer (Problems names
	// it), 0 without the header.
	ValueOmittedBytes int64
	// Problems names contract headers that are missing or do not parse.
	Problems []string
}

// Header is one record header. Values are text in shopstream's contract.
type Header struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// deadLetterJSON is DeadLetter's JSON shape.
type deadLetterJSON struct {
	Topic             string    `json:"topic"`
	Partition         int32     `json:"partition"`
	Offset            int64     `json:"offset"`
	Timestamp         time.Time `json:"timestamp"`
	Key               *string   `json:"key"`
	KeyBase64         string    `json:"key_base64,omitempty"`
	Value             *string   `json:"value"`
	ValueBase64       string    `json:"value_base64,omitempty"`
	Headers           []Header  `json:"headers"`
	OriginalTopic     string    `json:"original_topic"`
	OriginalPartition int32     `json:"original_partition"`
	OriginalOffset    int64     `json:"original_offset"`
	OriginalTimestamp time.Time `json:"original_timestamp"`
	Group             string    `json:"group"`
	Error             string    `json:"error"`
	ErrorClass        string    `json:"error_class"`
	Attempts          int       `json:"attempts"`
	FailedAt          time.Time `json:"failed_at"`
	RedriveCount      int       `json:"redrive_count"`
	ValueOmitted      bool      `json:"value_omitted,omitempty"`
	ValueOmittedBytes *int64    `json:"value_omitted_bytes,omitempty"`
	Problems          []string  `json:"problems,omitempty"`
}

// MarshalJSON writes the dead letter with snake_case names. Key and value
// are strings when they are valid UTF-8 (null when absent), otherwise they
// are written as key_base64 / value_base64. value_omitted and
// value_omitted_bytes appear only for a dead letter written without the
// original's value.
func (d DeadLetter) MarshalJSON() ([]byte, error) {
	o := deadLetterJSON{
		Topic: d.Topic, Partition: d.Partition, Offset: d.Offset, Timestamp: d.Timestamp,
		Headers:       d.Headers,
		OriginalTopic: d.OriginalTopic, OriginalPartition: d.OriginalPartition,
		OriginalOffset: d.OriginalOffset, OriginalTimestamp: d.OriginalTimestamp,
		Group: d.Group, Error: d.Error, ErrorClass: d.ErrorClass, Attempts: d.Attempts,
		FailedAt: d.FailedAt, RedriveCount: d.RedriveCount, Problems: d.Problems,
	}
	if o.Headers == nil {
		o.Headers = []Header{}
	}
	if d.ValueOmitted {
		o.ValueOmitted, o.ValueOmittedBytes = true, &d.ValueOmittedBytes
	}
	o.Key, o.KeyBase64 = textOrBase64(d.Key)
	o.Value, o.ValueBase64 = textOrBase64(d.Value)
	return json.Marshal(o)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (d *DeadLetter) UnmarshalJSON(b []byte) error {
	var o deadLetterJSON
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	key, err := bytesOf(o.Key, o.KeyBase64)
	if err != nil {
		return fmt.Errorf("key_base64: %w", err)
	}
	value, err := bytesOf(o.Value, o.ValueBase64)
	if err != nil {
		return fmt.Errorf("value_base64: %w", err)
	}
	*d = DeadLetter{
		Topic: o.Topic, Partition: o.Partition, Offset: o.Offset, Timestamp: o.Timestamp,
		Key: key, Value: value, Headers: o.Headers,
		OriginalTopic: o.OriginalTopic, OriginalPartition: o.OriginalPartition,
		OriginalOffset: o.OriginalOffset, OriginalTimestamp: o.OriginalTimestamp,
		Group: o.Group, Error: o.Error, ErrorClass: o.ErrorClass, Attempts: o.Attempts,
		FailedAt: o.FailedAt, RedriveCount: o.RedriveCount, Problems: o.Problems,
		ValueOmitted: o.ValueOmitted,
	}
	if o.ValueOmittedBytes != nil {
		d.ValueOmittedBytes = *o.ValueOmittedBytes
	}
	return nil
}

func bytesOf(text *string, b64 string) ([]byte, error) {
	switch {
	case text != nil:
		return []byte(*text), nil
	case b64 != "":
		return base64.StdEncoding.DecodeString(b64)
	}
	return nil, nil
}

func textOrBase64(b []byte) (*string, string) {
	switch {
	case b == nil:
		return nil, ""
	case utf8.Valid(b):
		s := string(b)
		return &s, ""
	default:
		return nil, base64.StdEncoding.EncodeToString(b)
	}
}

// Header returns the value of the first header named key, as the processor
// reads it.
func (d *DeadLetter) Header(key string) (string, bool) {
	for _, h := range d.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return "", false
}

// Filter selects dead letters. The zero Filter selects every one; each set
// field narrows the selection.
type Filter struct {
	// Group is the group that failed the record: a short name
	// (order-crm, matching shopstream.order-crm) or a full group id.
	Group string
	// ErrorClass is poison, permanent or retries_exhausted.
	ErrorClass string
	// Key is the record key, exactly.
	Key string
	// Since selects records that failed at or after it.
	Since time.Time
}

// Validate reports a filter that can never select anything by mistake: an
// unknown error class.
func (f Filter) Validate() error {
	switch f.ErrorClass {
	case "", topics.ErrorClassPoison, topics.ErrorClassPermanent, topics.ErrorClassRetriesExhausted:
		return nil
	}
	return fmt.Errorf("error class %q is not %s, %s or %s",
		f.ErrorClass, topics.ErrorClassPoison, topics.ErrorClassPermanent, topics.ErrorClassRetriesExhausted)
}

// Match reports whether d is selected by f.
func (f Filter) Match(d *DeadLetter) bool {
	if f.Group != "" && d.Group != f.Group && d.Group != shopstreamGroupPrefix+f.Group {
		return false
	}
	if f.ErrorClass != "" && d.ErrorClass != f.ErrorClass {
		return false
	}
	if f.Key != "" && string(d.Key) != f.Key {
		return false
	}
	if !f.Since.IsZero() && (d.FailedAt.IsZero() || d.FailedAt.Before(f.Since)) {
		return false
	}
	return true
}

// ValidateDLQTopic reports a topic name that is not a dead-letter topic
// (<topic>.dlq).
func ValidateDLQTopic(topic string) error {
	switch {
	case topic == "":
		return errors.New("no dead-letter topic given; name one such as " + topics.DLQTopic(topics.TopicOrder))
	case !strings.HasSuffix(topic, topics.DLQSuffix) || topic == topics.DLQSuffix:
		return fmt.Errorf("%q is not a dead-letter topic (its name does not end in %s); did you mean %s?",
			topic, topics.DLQSuffix, topics.DLQTopic(topic))
	}
	return nil
}

// ListDLQ reads dlqTopic from each partition's start to the end offset it
// has when ListDLQ is called, and returns the dead letters f selects,
// ordered by partition and offset. It commits nothing and joins no group.
func ListDLQ(ctx context.Context, cl *kgo.Client, dlqTopic string, f Filter) ([]DeadLetter, error) {
	if err := ValidateDLQTopic(dlqTopic); err != nil {
		return nil, err
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if err := requireTopic(ctx, cl, dlqTopic); err != nil {
		return nil, err
	}
	adm := kadm.NewClient(cl) // not closed: that would close cl
	starts, ends, err := dlqBounds(ctx, adm, dlqTopic)
	if err != nil {
		return nil, err
	}
	var out []DeadLetter
	err = readDLQRange(ctx, cl, dlqTopic, starts, ends, func(r *kgo.Record) {
		d := parseDeadLetter(r)
		if f.Match(&d) {
			out = append(out, d)
		}
	})
	if err != nil {
		return nil, err
	}
	sortDeadLetters(out)
	return out, nil
}

// requireTopic asks a broker (not the client's metadata cache) whether
// topic exists; an unknown topic is an error that says how to find the
// right name.
func requireTopic(ctx context.Context, cl *kgo.Client, topic string) error {
	md, err := topicMetadata(ctx, cl, []string{topic})
	if err != nil {
		return err
	}
	if _, ok := md.topics[topic]; !ok {
		return fmt.Errorf("topic %s does not exist; `shopstream topics describe` lists shopstream's topics (`shopstream topics ensure` creates them)", topic)
	}
	return nil
}

// dlqBounds returns each partition's start and end offset.
func dlqBounds(ctx context.Context, adm *kadm.Client, topic string) (starts, ends map[int32]int64, err error) {
	ls, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = ls.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("start offsets of %s: %w", topic, err)
	}
	le, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = le.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	starts, ends = map[int32]int64{}, map[int32]int64{}
	ls.Each(func(o kadm.ListedOffset) { starts[o.Partition] = o.Offset })
	le.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	return starts, ends, nil
}

// readDLQRange calls fn for every record of topic at offsets [from[p],
// until[p]) of each partition p, in offset order per partition, with a
// short-lived direct (group-less) client. Partitions whose range is empty
// are not read.
func readDLQRange(ctx context.Context, cl *kgo.Client, topic string, from, until map[int32]int64, fn func(*kgo.Record)) error {
	assign := map[int32]kgo.Offset{}
	left := map[int32]int64{} // partitions still to read → their end
	for p, end := range until {
		if start := from[p]; start < end {
			assign[p] = kgo.NewOffset().At(start)
			left[p] = end
		}
	}
	if len(left) == 0 {
		return nil
	}
	rd, err := kgo.NewClient(append(connOpts(cl),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: assign}),
		kgo.KeepControlRecords(), // control records take offsets too: see them to reach the end
	)...)
	if err != nil {
		return fmt.Errorf("read %s: %w", topic, err)
	}
	defer rd.Close()
	for len(left) > 0 {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read %s: %d partitions unfinished: %w", topic, len(left), err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if ferr == nil {
				ferr = fmt.Errorf("read %s partition %d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Partition]
			if !ok || r.Offset >= end {
				return // written after we looked
			}
			if r.Offset+1 >= end {
				delete(left, r.Partition)
			}
			if !r.Attrs.IsControl() {
				fn(r)
			}
		})
	}
	return nil
}

// parseDeadLetter reads the contract headers of a dead-letter record. The
// first header of each name counts, as in the processor.
func parseDeadLetter(r *kgo.Record) DeadLetter {
	d := DeadLetter{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
		Key: r.Key, Value: r.Value,
		OriginalPartition: -1, OriginalOffset: -1,
	}
	for _, h := range r.Headers {
		d.Headers = append(d.Headers, Header{Key: h.Key, Value: string(h.Value)})
	}
	problem := func(key, format string, args ...any) {
		d.Problems = append(d.Problems, key+": "+fmt.Sprintf(format, args...))
	}
	text := func(key string) (string, bool) {
		v, ok := d.Header(key)
		if !ok {
			problem(key, "missing")
		}
		return v, ok
	}
	integer := func(key string, bits int) (int64, bool) {
		v, ok := text(key)
		if !ok {
			return 0, false
		}
		n, err := strconv.ParseInt(v, 10, bits)
		if err != nil {
			problem(key, "%q is not an integer", v)
			return 0, false
		}
		return n, true
	}

	d.OriginalTopic, _ = text(topics.HeaderOriginalTopic)
	if n, ok := integer(topics.HeaderOriginalPartition, 32); ok {
		d.OriginalPartition = int32(n)
	}
	if n, ok := integer(topics.HeaderOriginalOffset, 64); ok {
		d.OriginalOffset = n
	}
	if n, ok := integer(topics.HeaderOriginalTimestamp, 64); ok {
		// Outside years 0–9999 a time has no RFC 3339 (JSON) form.
		if ts := time.UnixMilli(n).UTC(); ts.Year() >= 0 && ts.Year() <= 9999 {
			d.OriginalTimestamp = ts
		} else {
			problem(topics.HeaderOriginalTimestamp, "%d is not a plausible unix time in ms", n)
		}
	}
	d.Group, _ = text(topics.HeaderGroup)
	d.Error, _ = text(topics.HeaderError)
	d.ErrorClass, _ = text(topics.HeaderErrorClass)
	if n, ok := integer(topics.HeaderAttempts, 32); ok {
		d.Attempts = int(n)
	}
	if v, ok := text(topics.HeaderFailedAt); ok {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			d.FailedAt = t
		} else {
			problem(topics.HeaderFailedAt, "%q is not an RFC 3339 time", v)
		}
	}
	if v, ok := d.Header(topics.HeaderRedriveCount); ok {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			d.RedriveCount = n
		} else {
			problem(topics.HeaderRedriveCount, "%q is not a count", v)
		}
	}
	if v, ok := d.Header(topics.HeaderValueOmitted); ok {
		d.ValueOmitted = true
		// Digits only: no sign, no spaces, no 0x or underscores.
		if n, err := strconv.ParseUint(v, 10, 63); err == nil {
			d.ValueOmittedBytes = int64(n)
		} else {
			d.ValueOmittedBytes = -1
			problem(topics.HeaderValueOmitted, "%q is not a size in bytes", v)
		}
	}
	return d
}

// sortDeadLetters orders by partition, then offset.
func sortDeadLetters(ds []DeadLetter) {
	slices.SortFunc(ds, func(a, b DeadLetter) int {
		return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
}
