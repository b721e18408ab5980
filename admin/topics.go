package admin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shopstream/shopstream/topics"
)

// Retention of the topics EnsureTopics creates: a week of events is enough
// to replay after an outage; dead letters wait a month for someone to look.
const (
	SourceRetention = 7 * 24 * time.Hour
	DLQRetention    = 30 * 24 * time.Hour
)

// DefaultTopics returns the four default topics followed by their
// dead-letter topics.
func DefaultTopics() []string {
	base := []string{topics.TopicCatalog, topics.TopicInventory, topics.TopicOrder, topics.TopicCustomer}
	out := slices.Clone(base)
	for _, t := range base {
		out = append(out, topics.DLQTopic(t))
	}
	return out
}

// TopicConfigs returns the configs EnsureTopics gives a new topic with
// replication factor rf (-1: the broker default): cleanup.policy delete,
// retention.ms of SourceRetention (DLQRetention for a dead-letter topic),
// and min.insync.replicas 2 when rf is at least 3, so an acks=all write
// survives the loss of one broker and a single replica never acknowledges
// alone. With a smaller or unknown rf the broker's default stays: 2 of 2
// replicas would stop every write while one broker restarts.
func TopicConfigs(topic string, rf int16) map[string]*string {
	retention := SourceRetention
	if strings.HasSuffix(topic, topics.DLQSuffix) {
		retention = DLQRetention
	}
	cfg := map[string]*string{
		"cleanup.policy": kadm.StringPtr("delete"),
		"retention.ms":   kadm.StringPtr(strconv.FormatInt(retention.Milliseconds(), 10)),
	}
	if rf >= 3 {
		cfg["min.insync.replicas"] = kadm.StringPtr("2")
	}
	return cfg
}

// EnsureReport says what EnsureTopics found and did, one entry per topic
// in the order asked.
type EnsureReport struct {
	Topics []EnsuredTopic `json:"topics"`
}

// EnsuredTopic is one topic of an EnsureReport.
type EnsuredTopic struct {
	Topic string `json:"topic"`
	// Created is true when EnsureTopics created it, false when it existed.
	Created bool `json:"created"`
	// Partitions and ReplicationFactor are what the topic has; the Wanted
	// ones what was asked (-1: the broker default).
	Partitions              int32 `json:"partitions"`
	WantedPartitions        int32 `json:"wanted_partitions"`
	ReplicationFactor       int16 `json:"replication_factor"`
	WantedReplicationFactor int16 `json:"wanted_replication_factor"`
	// Configs are the configs set at creation (nil for an existing topic).
	Configs map[string]string `json:"configs,omitempty"`
	// Differences describes, for an existing topic, each way it differs
	// from what was asked: partition count, replication factor, configs.
	// EnsureTopics never changes an existing topic.
	Differences []string `json:"differences,omitempty"`
}

// PartitionsDiffer reports an existing topic whose partition count is not
// the one asked for.
func (t EnsuredTopic) PartitionsDiffer() bool {
	return !t.Created && t.WantedPartitions > 0 && t.Partitions != t.WantedPartitions
}

// Created returns the names of the topics created.
func (r EnsureReport) Created() []string {
	return r.names(func(t EnsuredTopic) bool { return t.Created })
}

// Existing returns the names of the topics that existed.
func (r EnsureReport) Existing() []string {
	return r.names(func(t EnsuredTopic) bool { return !t.Created })
}

// Differing returns the names of the existing topics that differ from what
// was asked.
func (r EnsureReport) Differing() []string {
	return r.names(func(t EnsuredTopic) bool { return len(t.Differences) > 0 })
}

func (r EnsureReport) names(keep func(EnsuredTopic) bool) []string {
	out := []string{}
	for _, t := range r.Topics {
		if keep(t) {
			out = append(out, t.Topic)
		}
	}
	return out
}

// EnsureTopics creates the topics of names that do not exist (nil names:
// DefaultTopics) with the given partitions and replication factor (-1 for
// either: the broker default) and TopicConfigs, overridden by configs (a
// nil value removes a key from TopicConfigs). It waits until every
// created partition has a leader.
//
// An existing topic is never changed, only reported, with every
// difference from what was asked: adding partitions moves keys to other
// partitions, which breaks per-key order while the old records drain, so
// it must be an operator's deliberate act (kafka-topics --alter). Running
// EnsureTopics again creates nothing.
func EnsureTopics(ctx context.Context, cl *kgo.Client, names []string, partitions int32, rf int16, configs map[string]*string) (EnsureReport, error) {
	rep := EnsureReport{Topics: []EnsuredTopic{}}
	if len(names) == 0 {
		names = DefaultTopics()
	}
	var errs []error
	if partitions == 0 || partitions < -1 {
		errs = append(errs, fmt.Errorf("partitions %d: want a positive count, or -1 for the broker default", partitions))
	}
	if rf == 0 || rf < -1 {
		errs = append(errs, fmt.Errorf("replication factor %d: want a positive count, or -1 for the broker default", rf))
	}
	var uniq []string
	for _, n := range names {
		switch {
		case n == "":
			errs = append(errs, errors.New("a topic name is empty"))
		case !slices.Contains(uniq, n):
			uniq = append(uniq, n)
		}
	}
	if len(errs) > 0 {
		return rep, errors.Join(errs...)
	}

	md, err := topicMetadata(ctx, cl, uniq)
	if err != nil {
		return rep, err
	}
	adm := kadm.NewClient(cl) // not closed: that would close cl
	var existing []string
	for _, n := range uniq {
		et := EnsuredTopic{Topic: n, WantedPartitions: partitions, WantedReplicationFactor: rf}
		if td, ok := md.topics[n]; ok {
			et.Partitions, et.ReplicationFactor = int32(len(td.Partitions)), int16(td.Partitions.NumReplicas())
			existing = append(existing, n)
			rep.Topics = append(rep.Topics, et)
			continue
		}
		cfg := TopicConfigs(n, rf)
		for k, v := range configs {
			if v == nil {
				delete(cfg, k)
			} else {
				cfg[k] = v
			}
		}
		resp, err := adm.CreateTopic(ctx, partitions, rf, cfg, n)
		switch {
		case errors.Is(err, kerr.TopicAlreadyExists):
			// Created by someone else since we looked.
			existing = append(existing, n)
		case err != nil:
			errs = append(errs, createTopicError(n, partitions, rf, md.brokers, err, resp.ErrMessage))
			continue
		default:
			et.Created = true
			et.Partitions, et.ReplicationFactor = resp.NumPartitions, resp.ReplicationFactor
			et.Configs = map[string]string{}
			for k, v := range cfg {
				et.Configs[k] = *v
			}
		}
		rep.Topics = append(rep.Topics, et)
	}

	// Refresh what changed: created topics until they have leaders, and
	// topics someone else created meanwhile.
	if created := rep.Created(); len(created) > 0 {
		if err := waitForLeaders(ctx, cl, created); err != nil {
			errs = append(errs, err)
		}
	}
	if len(existing) > 0 {
		if md, err = topicMetadata(ctx, cl, existing); err != nil {
			return rep, errors.Join(append(errs, err)...)
		}
		if err := describeDifferences(ctx, adm, md, &rep, rf); err != nil {
			errs = append(errs, err)
		}
	}
	return rep, errors.Join(errs...)
}

func createTopicError(topic string, partitions int32, rf int16, brokers int, err error, msg string) error {
	if msg != "" {
		err = fmt.Errorf("%w (%s)", err, msg)
	}
	switch {
	case errors.Is(err, kerr.InvalidReplicationFactor):
		return fmt.Errorf("create topic %s: replication factor %d: %w; the cluster has %d brokers: lower --replication-factor, or -1 for the broker default", topic, rf, err, brokers)
	case errors.Is(err, kerr.InvalidPartitions):
		return fmt.Errorf("create topic %s: %d partitions: %w; set --partitions to a positive count", topic, partitions, err)
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed):
		return fmt.Errorf("create topic %s: %w; grant this client CREATE on the topic (or cluster), or have an administrator run topics ensure", topic, err)
	case errors.Is(err, kerr.InvalidConfig), errors.Is(err, kerr.PolicyViolation):
		return fmt.Errorf("create topic %s: the broker refused its configs: %w", topic, err)
	}
	return fmt.Errorf("create topic %s: %w", topic, err)
}

// describeDifferences fills Partitions, ReplicationFactor and Differences
// of the existing topics from md and their configs.
func describeDifferences(ctx context.Context, adm *kadm.Client, md topicMD, rep *EnsureReport, rf int16) error {
	var names []string
	for _, t := range rep.Topics {
		if !t.Created {
			names = append(names, t.Topic)
		}
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		return fmt.Errorf("describe configs of %s: %w", strings.Join(names, ", "), err)
	}
	for i := range rep.Topics {
		et := &rep.Topics[i]
		if et.Created {
			continue
		}
		td, ok := md.topics[et.Topic]
		if !ok {
			et.Differences = append(et.Differences, "disappeared while ensuring")
			continue
		}
		et.Partitions, et.ReplicationFactor = int32(len(td.Partitions)), int16(td.Partitions.NumReplicas())
		if et.PartitionsDiffer() {
			et.Differences = append(et.Differences, fmt.Sprintf("partitions: has %d, wanted %d (not changed: adding partitions moves keys and breaks per-key order; use kafka-topics --alter deliberately)",
				et.Partitions, et.WantedPartitions))
		}
		if rf > 0 && et.ReplicationFactor != rf {
			et.Differences = append(et.Differences, fmt.Sprintf("replication factor: has %d, wanted %d (not changed: reassign partitions to change it)", et.ReplicationFactor, rf))
		}
		rc, err := rcs.On(et.Topic, nil)
		if err == nil {
			err = rc.Err
		}
		if err != nil {
			et.Differences = append(et.Differences, "configs unknown: "+err.Error())
			continue
		}
		have := map[string]string{}
		for _, c := range rc.Configs {
			have[c.Key] = c.MaybeValue()
		}
		want := TopicConfigs(et.Topic, rf)
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if v := *want[k]; have[k] != v {
				et.Differences = append(et.Differences, fmt.Sprintf("%s: has %s, wanted %s (not changed)", k, have[k], v))
			}
		}
	}
	return nil
}

// topicMD is a fresh metadata answer: the topics that exist, and the
// broker count.
type topicMD struct {
	topics  map[string]kadm.TopicDetail
	brokers int
}

// topicMetadata asks a broker (not the client's cache, which may predate a
// create) about names; unknown topics are absent from the answer.
func topicMetadata(ctx context.Context, cl *kgo.Client, names []string) (topicMD, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false // looking must never create a mistyped topic
	for _, n := range names {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(n)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return topicMD{}, fmt.Errorf("metadata of %s: %w", strings.Join(names, ", "), err)
	}
	md := topicMD{topics: map[string]kadm.TopicDetail{}, brokers: len(resp.Brokers)}
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		switch err := kerr.ErrorForCode(t.ErrorCode); {
		case errors.Is(err, kerr.UnknownTopicOrPartition):
			continue
		case err != nil && len(t.Partitions) == 0:
			// LEADER_NOT_AVAILABLE right after a create: it exists.
			if !errors.Is(err, kerr.LeaderNotAvailable) {
				return topicMD{}, fmt.Errorf("metadata of %s: %w", *t.Topic, err)
			}
		}
		td := kadm.TopicDetail{Topic: *t.Topic, ID: t.TopicID, IsInternal: t.IsInternal, Partitions: kadm.PartitionDetails{}}
		for _, p := range t.Partitions {
			td.Partitions[p.Partition] = kadm.PartitionDetail{
				Topic: *t.Topic, Partition: p.Partition,
				Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
				Replicas: p.Replicas, ISR: p.ISR, OfflineReplicas: p.OfflineReplicas,
				Err: kerr.ErrorForCode(p.ErrorCode),
			}
		}
		md.topics[*t.Topic] = td
	}
	return md, nil
}

// waitForLeaders polls until every partition of names has a leader, for
// at most 30 seconds (less if ctx ends sooner).
func waitForLeaders(ctx context.Context, cl *kgo.Client, names []string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	wait := 20 * time.Millisecond
	for {
		md, err := topicMetadata(ctx, cl, names)
		var pending []string
		if err == nil {
			for _, n := range names {
				td, ok := md.topics[n]
				ready := ok && len(td.Partitions) > 0
				for _, p := range td.Partitions {
					ready = ready && p.Leader >= 0 && p.Err == nil
				}
				if !ready {
					pending = append(pending, n)
				}
			}
			if len(pending) == 0 {
				return nil
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			if err == nil {
				err = fmt.Errorf("%s still without a leader", strings.Join(pending, ", "))
			}
			return fmt.Errorf("created topics are not ready: %w: %w", err, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// TopicDescription is one topic as DescribeTopics sees it.
type TopicDescription struct {
	Topic             string                 `json:"topic"`
	ID                string                 `json:"id"`
	ReplicationFactor int                    `json:"replication_factor"`
	Partitions        []PartitionDescription `json:"partitions"`
	// Configs are the topic's configs whose value does not come from
	// Kafka's built-in default (set on the topic, or by the brokers).
	Configs []TopicConfig `json:"configs"`
}

// PartitionDescription is one partition: its leader, replicas and ISR.
type PartitionDescription struct {
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"` // -1: none
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
	Offline     []int32 `json:"offline_replicas,omitempty"`
	Error       string  `json:"error,omitempty"`
}

// UnderReplicated reports a partition whose ISR is smaller than its
// replica set.
func (p PartitionDescription) UnderReplicated() bool { return len(p.ISR) < len(p.Replicas) }

// TopicConfig is one config of a topic and where its value comes from:
// Kafka's ConfigSource name (DYNAMIC_TOPIC_CONFIG: set on the topic;
// DYNAMIC_BROKER_CONFIG, DYNAMIC_DEFAULT_BROKER_CONFIG,
// STATIC_BROKER_CONFIG: the brokers' settings).
type TopicConfig struct {
	Key       string `json:"key"`
	Value     string `json:"value"`
	Source    string `json:"source"`
	Sensitive bool   `json:"sensitive,omitempty"`
}

// DescribeTopics describes names (nil: DefaultTopics), in that order. A
// topic that does not exist is an error naming it; the others are still
// described.
func DescribeTopics(ctx context.Context, cl *kgo.Client, names []string) ([]TopicDescription, error) {
	if len(names) == 0 {
		names = DefaultTopics()
	}
	md, err := topicMetadata(ctx, cl, names)
	if err != nil {
		return nil, err
	}
	var found, missing []string
	for _, n := range names {
		if _, ok := md.topics[n]; ok {
			if !slices.Contains(found, n) {
				found = append(found, n)
			}
		} else if !slices.Contains(missing, n) {
			missing = append(missing, n)
		}
	}
	var rcs kadm.ResourceConfigs
	if len(found) > 0 {
		if rcs, err = kadm.NewClient(cl).DescribeTopicConfigs(ctx, found...); err != nil {
			return nil, fmt.Errorf("describe configs of %s: %w", strings.Join(found, ", "), err)
		}
	}
	out := []TopicDescription{}
	for _, n := range found {
		td := md.topics[n]
		d := TopicDescription{Topic: n, ID: td.ID.String(), ReplicationFactor: td.Partitions.NumReplicas(),
			Partitions: []PartitionDescription{}, Configs: []TopicConfig{}}
		for _, p := range td.Partitions.Sorted() {
			pd := PartitionDescription{Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
				Replicas: orEmpty(p.Replicas), ISR: orEmpty(p.ISR), Offline: p.OfflineReplicas}
			if p.Err != nil {
				pd.Error = p.Err.Error()
			}
			d.Partitions = append(d.Partitions, pd)
		}
		if rc, err := rcs.On(n, nil); err == nil && rc.Err == nil {
			for _, c := range rc.Configs {
				if c.Source == kmsg.ConfigSourceDefaultConfig || c.Source == kmsg.ConfigSourceUnknown {
					continue
				}
				d.Configs = append(d.Configs, TopicConfig{Key: c.Key, Value: c.MaybeValue(), Source: c.Source.String(), Sensitive: c.Sensitive})
			}
			slices.SortFunc(d.Configs, func(a, b TopicConfig) int { return strings.Compare(a.Key, b.Key) })
		} else {
			if err == nil {
				err = rc.Err
			}
			return out, fmt.Errorf("configs of %s: %w", n, err)
		}
		out = append(out, d)
	}
	if len(missing) > 0 {
		what := "topic " + missing[0] + " does not exist"
		if len(missing) > 1 {
			what = "topics " + strings.Join(missing, ", ") + " do not exist"
		}
		return out, fmt.Errorf("%s; check the name (--topics), or create shopstream's topics with `shopstream topics ensure`", what)
	}
	return out, nil
}

func orEmpty(s []int32) []int32 {
	if s == nil {
		return []int32{}
	}
	return s
}
