package processor

import "testing"

// The ready queue is FIFO across wrap-around and growth, puts returned
// tasks back in front in their order, and keeps nothing it handed out.
func TestTaskQueue(t *testing.T) {
	var q taskQueue
	works := make([]*work, 300)
	for i := range works {
		works[i] = &work{}
	}
	var want []*work // the model
	check := func(step string) {
		t.Helper()
		if q.len() != len(want) {
			t.Fatalf("%s: len %d, want %d", step, q.len(), len(want))
		}
		for i, w := range want {
			if got := q.at(i).w; got != w {
				t.Fatalf("%s: task %d is %p, want %p", step, i, got, w)
			}
		}
	}
	next := 0
	for round := range 50 {
		// Push a few (growing past 64 and 128 on the way), pop fewer.
		for range 3 + round%5 {
			q.push(task{w: works[next%len(works)]})
			want = append(want, works[next%len(works)])
			next++
		}
		for range 2 + round%3 {
			if len(want) == 0 {
				break
			}
			if got := q.pop(); got.w != want[0] {
				t.Fatalf("round %d: pop = %p, want %p", round, got.w, want[0])
			}
			want = want[1:]
		}
		if round%7 == 0 {
			back := []task{{w: works[(next+1)%len(works)]}, {w: works[(next+2)%len(works)]}}
			q.pushFront(back)
			want = append([]*work{back[0].w, back[1].w}, want...)
		}
		check("round")
	}
	for q.len() > 0 {
		q.pop()
	}
	for i := range q.buf {
		if q.buf[i] != (task{}) {
			t.Fatalf("slot %d still holds %+v after every task was taken", i, q.buf[i])
		}
	}
}
