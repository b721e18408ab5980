package processor

// taskQueue is a group's ready queue: a FIFO of tasks in a ring that grows
// to the most tasks ever queued at once (at most MaxBuffered) and then
// allocates nothing. Taken slots are zeroed, so it keeps no record alive.
type taskQueue struct {
	buf     []task // len(buf) is zero or a power of two
	head, n int
}

func (q *taskQueue) len() int { return q.n }

// at returns the i-th queued task's slot (0 is the first).
func (q *taskQueue) at(i int) *task { return &q.buf[(q.head+i)&(len(q.buf)-1)] }

// reserve makes room for k more tasks.
func (q *taskQueue) reserve(k int) {
	if q.n+k <= len(q.buf) {
		return
	}
	size := max(64, len(q.buf))
	for size < q.n+k {
		size *= 2
	}
	grown := make([]task, size)
	for i := range q.n {
		grown[i] = *q.at(i)
	}
	q.buf, q.head = grown, 0
}

// push appends t.
func (q *taskQueue) push(t task) {
	q.reserve(1)
	*q.at(q.n) = t
	q.n++
}

// pushFront puts ts, in their order, before the queued tasks.
func (q *taskQueue) pushFront(ts []task) {
	q.reserve(len(ts))
	q.head = (q.head - len(ts)) & (len(q.buf) - 1)
	q.n += len(ts)
	for i, t := range ts {
		*q.at(i) = t
	}
}

// pop removes and returns the first task; the queue must not be empty.
func (q *taskQueue) pop() task {
	s := q.at(0)
	t := *s
	*s = task{}
	q.head = (q.head + 1) & (len(q.buf) - 1)
	q.n--
	return t
}
