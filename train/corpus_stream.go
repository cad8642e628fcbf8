package train

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/bert"
)

// purposeCorpus seeds a records corpus's epochs: the order of the shards and the shuffle
// buffer's draws.
const purposeCorpus = 0x636f72707573 // "corpus"

// windowStream is the training windows of a records corpus as an endless stream of epochs,
// each a pass over the training subjects' records: the shards in an order drawn for the
// epoch, each shard's training records cut into windows, and the windows drawn at random
// from a shuffle buffer of at most size windows. Memory holds one shard, the windows of one
// record not yet in the buffer, and the buffer: never the corpus. Row k of the stream is row
// k mod perEpoch of epoch k / perEpoch, and each epoch's order is a function of (seed, epoch),
// so a resumed run reads the rows an unbroken run reads (rows seeks to them).
type windowStream struct {
	ctx      context.Context
	recs     *data.Records
	win      *windower
	seed     uint64
	size     int // the shuffle buffer's windows
	perEpoch int // windows per epoch, as counted before training

	pos     int // the stream's next row
	epoch   int
	inEpoch int // rows given in this epoch
	rng     *rand.Rand
	shards  []string // this epoch's order
	nextSh  int
	rec     []data.Subject // training records of the shard being read (cut at Until)
	nextRec int
	pending []bert.Encoded // windows of the record being read, not yet in the buffer
	buf     []bert.Encoded
}

// rows returns rows [k, k+n) of the stream.
func (s *windowStream) rows(k, n int) ([]bert.Encoded, error) {
	if s.rng == nil || k != s.pos {
		if err := s.seek(k); err != nil {
			return nil, err
		}
	}
	out := make([]bert.Encoded, 0, n)
	for len(out) < n {
		if s.inEpoch == s.perEpoch {
			s.startEpoch(s.epoch + 1)
		}
		w, err := s.next()
		if err != nil {
			return nil, err
		}
		out = append(out, w)
		s.inEpoch++
		s.pos++
	}
	return out, nil
}

// seek readies the stream to give row k next: its epoch started and the rows before k in it
// read and dropped.
func (s *windowStream) seek(k int) error {
	s.startEpoch(k / s.perEpoch)
	s.pos = k - k%s.perEpoch
	for s.pos < k {
		if _, err := s.next(); err != nil {
			return err
		}
		s.inEpoch++
		s.pos++
	}
	return nil
}

// startEpoch starts epoch e from its first row.
func (s *windowStream) startEpoch(e int) {
	s.epoch, s.inEpoch = e, 0
	s.rng = rand.New(rand.NewPCG(stepSeed(s.seed, purposeCorpus, e), 0x77696e646f77)) // "window"
	s.shards = append(s.shards[:0], s.recs.Dataset.Shards...)
	s.rng.Shuffle(len(s.shards), func(i, j int) { s.shards[i], s.shards[j] = s.shards[j], s.shards[i] })
	clear(s.buf)
	s.nextSh, s.rec, s.nextRec, s.pending, s.buf = 0, nil, 0, nil, s.buf[:0]
}

// next draws the next window of the epoch from the shuffle buffer, filled first.
func (s *windowStream) next() (bert.Encoded, error) {
	for len(s.buf) < s.size {
		more, err := s.fill()
		if err != nil {
			return bert.Encoded{}, err
		}
		if !more {
			break
		}
	}
	if len(s.buf) == 0 {
		return bert.Encoded{}, fmt.Errorf("train pretrain: the training records gave %d windows in epoch %d, %d when "+
			"counted: did dataset %s change?", s.inEpoch, s.epoch+1, s.perEpoch, s.recs.Dataset.Root)
	}
	i := s.rng.IntN(len(s.buf))
	w := s.buf[i]
	s.buf[i] = s.buf[len(s.buf)-1]
	s.buf[len(s.buf)-1] = bert.Encoded{}
	s.buf = s.buf[:len(s.buf)-1]
	return w, nil
}

// fill moves one window into the buffer, cutting the next record or reading the next shard
// when none is pending; false when the epoch's records are all read.
func (s *windowStream) fill() (bool, error) {
	for len(s.pending) == 0 {
		if s.nextRec < len(s.rec) {
			r := s.win.split(s.rec[s.nextRec].Events)
			s.nextRec++
			s.win.cut(&r, func(lo, hi, _ int) { s.pending = append(s.pending, s.win.encode(&r, lo, hi)) })
			continue
		}
		if s.nextSh == len(s.shards) {
			return false, nil
		}
		if err := s.readShard(s.shards[s.nextSh]); err != nil {
			return false, err
		}
		s.nextSh++
	}
	s.buf = append(s.buf, s.pending[0])
	s.pending[0] = bert.Encoded{}
	s.pending = s.pending[1:]
	return true, nil
}

// readShard reads one shard and keeps its training records.
func (s *windowStream) readShard(path string) error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	sh, err := s.recs.Dataset.ReadShard(path)
	if err != nil {
		return err
	}
	s.win.refresh()
	clear(s.rec)
	s.rec, s.nextRec = s.rec[:0], 0
	return s.recs.Shard(sh, map[string]bool{data.SplitTrain: true}, nil, func(_ string, subj data.Subject) error {
		s.rec = append(s.rec, subj)
		return nil
	})
}
