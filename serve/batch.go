package serve

import (
	"context"
	"slices"
	"time"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/modelrepo"
)

// Batching configures dynamic batching of single-subject Predict calls: workers take the
// calls queued at the moment (up to MaxBatch, waiting at most MaxDelay for more) and score
// them with one scoring call per model version, sharing the code table and the model's
// per-call setup. It applies to the model kinds in Kinds: `medseq serve` batches the BERT
// (one forward pass over a batch costs far less than one per subject) and not the XGBoost
// predictor (a few microseconds per subject, which queueing would only delay) unless asked.
type Batching struct {
	MaxBatch int           // subjects per scoring call; <= 1 turns batching off
	MaxDelay time.Duration // longest a call waits for others to join its batch; 0: take what is queued
	Workers  int           // concurrent batches; 0 = GOMAXPROCS
	Kinds    []string      // model kinds (modelrepo.KindBERT, ...) whose calls are batched; empty: every kind
}

// DefaultBatching is what `medseq serve` uses: BERT calls in batches of up to 32 of those
// queued at the moment, never waiting for company (on the CPU a 2 ms wait cost a lone call
// 2.5 ms and bought no throughput; on a GPU a wait may pay, see --dynamic-batch-delay); XGBoost calls
// scored one by one.
func DefaultBatching() Batching {
	return Batching{MaxBatch: 32, Kinds: []string{modelrepo.KindBERT}}
}

// batched reports whether Predict calls to v go through the batcher.
func (s *Server) batched(v *Version) bool {
	if s.batchQ == nil {
		return false
	}
	return len(s.cfg.Batching.Kinds) == 0 || slices.Contains(s.cfg.Batching.Kinds, v.Scorer.Kind())
}

type job struct {
	ctx    context.Context
	method string
	v      *Version
	table  *data.Codes
	sub    *subject
	reqID  string
	caller string
	enq    time.Time
	done   chan jobResult
}

type jobResult struct {
	r   scored
	err error
}

// submit queues one subject for the batcher and waits for its answer or the deadline.
func (s *Server) submit(ctx context.Context, method string, v *Version, table *data.Codes, sub *subject,
	reqID string) (scored, error) {
	j := &job{ctx: ctx, method: method, v: v, table: table, sub: sub, reqID: reqID, caller: Caller(ctx), enq: time.Now(),
		done: make(chan jobResult, 1)}
	select {
	case s.batchQ <- j:
	case <-ctx.Done():
		return scored{}, ctxStatus(ctx)
	}
	select {
	case r := <-j.done:
		return r.r, r.err
	case <-ctx.Done():
		return scored{}, ctxStatus(ctx)
	}
}

// batchWorker collects and scores batches until stop closes.
func (s *Server) batchWorker(stop <-chan struct{}) {
	b := s.cfg.Batching
	var timer *time.Timer
	for {
		var first *job
		select {
		case first = <-s.batchQ:
		case <-stop:
			return
		}
		jobs := []*job{first}
		if b.MaxDelay > 0 {
			if timer == nil {
				timer = time.NewTimer(b.MaxDelay)
			} else {
				timer.Reset(b.MaxDelay)
			}
		collectWait:
			for len(jobs) < b.MaxBatch {
				select {
				case j := <-s.batchQ:
					jobs = append(jobs, j)
				case <-timer.C:
					break collectWait
				}
			}
			timer.Stop()
		} else {
		collect:
			for len(jobs) < b.MaxBatch {
				select {
				case j := <-s.batchQ:
					jobs = append(jobs, j)
				default:
					break collect
				}
			}
		}
		s.runBatch(jobs)
	}
}

// runBatch scores jobs, one scoring call per model version.
func (s *Server) runBatch(jobs []*job) {
	defer func() {
		if p := recover(); p != nil {
			err := s.panicked("batch", p)
			for _, j := range jobs {
				select {
				case j.done <- jobResult{err: err}:
				default:
				}
			}
		}
	}()
	groups := map[*Version][]*job{}
	var order []*Version
	for _, j := range jobs {
		if j.ctx.Err() != nil {
			j.done <- jobResult{err: ctxStatus(j.ctx)}
			continue
		}
		if groups[j.v] == nil {
			order = append(order, j.v)
		}
		groups[j.v] = append(groups[j.v], j)
	}
	for _, v := range order {
		g := groups[v]
		start := time.Now()
		table := data.NewCodes()
		subs := make([]*subject, len(g))
		for i, j := range g {
			s.metrics.QueueTime.WithLabelValues(v.Name).Observe(start.Sub(j.enq).Seconds())
			subs[i] = j.sub.reintern(j.table, table)
		}
		res, err := s.scoreCore(v, table, subs)
		if err == nil && s.audit != nil {
			now := time.Now().UTC()
			recs := make([]AuditRecord, len(g))
			for i, j := range g {
				recs[i] = AuditRecord{Time: now, RequestID: j.reqID, Caller: j.caller, Method: j.method, Model: v.Name,
					Version: v.Version, SubjectHash: s.audit.hash(j.sub.subjectID), Score: res[i].prob}
			}
			err = s.writeAudit(recs)
		}
		s.metrics.BatchSize.WithLabelValues("Predict", v.Name).Observe(float64(len(g)))
		if err == nil {
			s.metrics.Inferences.WithLabelValues(v.Name, v.Version).Add(float64(len(g)))
			s.countCodes(v, res)
		}
		end := time.Now()
		for i, j := range g {
			if err != nil {
				j.done <- jobResult{err: err}
				continue
			}
			s.metrics.Latency.WithLabelValues(j.method, v.Name, v.Version).Observe(end.Sub(j.enq).Seconds())
			j.done <- jobResult{r: res[i]}
		}
	}
}

// reintern copies a subject with its codes moved from one code table to another.
func (sub *subject) reintern(from, to *data.Codes) *subject {
	remap := make([]int32, from.Len())
	for id := range remap {
		remap[id] = to.ID(from.Name(int32(id)))
	}
	c := *sub
	c.events = make([]data.Event, len(sub.events))
	for i, e := range sub.events {
		e.Code = remap[e.Code]
		c.events[i] = e
	}
	return &c
}
