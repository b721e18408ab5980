package processor

import "sync/atomic"

// GroupStats counts what a group did since the process started.
type GroupStats struct {
	Group            string `json:"group"`
	Topic            string `json:"topic"`
	Consumed         int64  `json:"consumed"`
	Applied          int64  `json:"applied"`
	SkippedStale     int64  `json:"skipped_stale"`
	SkippedDuplicate int64  `json:"skipped_duplicate"`
	Filtered         int64  `json:"filtered"`
	Retried          int64  `json:"retried"`
	DeadLettered     int64  `json:"dead_lettered"`
}

type groupCounters struct {
	applied, stale, duplicate, filtered, retried, deadLettered atomic.Int64
}

func (c *groupCounters) add(outcome string, n int64) {
	switch outcome {
	case OutcomeApplied:
		c.applied.Add(n)
	case OutcomeSkippedStale:
		c.stale.Add(n)
	case OutcomeSkippedDuplicate:
		c.duplicate.Add(n)
	case OutcomeFiltered:
		c.filtered.Add(n)
	case OutcomeDeadLettered:
		c.deadLettered.Add(n)
	}
}

// Stats returns each group's counters. Consumed counts finished records:
// the sum of the outcomes.
func (p *Processor) Stats() []GroupStats {
	out := make([]GroupStats, 0, len(p.groups))
	for _, g := range p.groups {
		s := GroupStats{
			Group:            g.id,
			Topic:            g.cfg.Topic,
			Applied:          g.stats.applied.Load(),
			SkippedStale:     g.stats.stale.Load(),
			SkippedDuplicate: g.stats.duplicate.Load(),
			Filtered:         g.stats.filtered.Load(),
			Retried:          g.stats.retried.Load(),
			DeadLettered:     g.stats.deadLettered.Load(),
		}
		s.Consumed = s.Applied + s.SkippedStale + s.SkippedDuplicate + s.Filtered + s.DeadLettered
		out = append(out, s)
	}
	return out
}
