package bert

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/medseq/medseq/data"
)

// Tensor is one safetensors entry, converted to float32 on read.
type Tensor struct {
	DType string // as stored: F32, F16 or BF16
	Shape []int
	F32   []float32
}

// MaxHeaderBytes bounds a safetensors header (the format's own limit is 100 MB).
const MaxHeaderBytes = 100 << 20

type stEntry struct {
	DType   string    `json:"dtype"`
	Shape   []int     `json:"shape"`
	Offsets [2]uint64 `json:"data_offsets"`
}

var dtypeSize = map[string]uint64{"F32": 4, "F16": 2, "BF16": 2}

// WriteSafetensors writes float32 tensors (names in the order given) with metadata,
// atomically.
func WriteSafetensors(path string, names []string, ts map[string]Tensor, metadata map[string]string) error {
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off uint64
	for _, n := range names {
		t, ok := ts[n]
		if !ok {
			return fmt.Errorf("write %s: no tensor %q", path, n)
		}
		size := 1
		for _, d := range t.Shape {
			size *= d
		}
		if size != len(t.F32) {
			return fmt.Errorf("write %s: tensor %s has %d values, shape %v needs %d",
				path, n, len(t.F32), t.Shape, size)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		end := off + 4*uint64(size)
		header[n] = stEntry{DType: "F32", Shape: shape, Offsets: [2]uint64{off, end}}
		off = end
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(hj)%8 != 0 {
		hj = append(hj, ' ')
	}
	f, err := data.CreateAtomic(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	w := newBufWriter(f)
	var n8 [8]byte
	binary.LittleEndian.PutUint64(n8[:], uint64(len(hj)))
	w.write(n8[:])
	w.write(hj)
	var b4 [4]byte
	for _, n := range names {
		for _, x := range ts[n].F32 {
			binary.LittleEndian.PutUint32(b4[:], math.Float32bits(x))
			w.write(b4[:])
		}
	}
	if err := w.flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Commit()
}

type bufWriter struct {
	w   io.Writer
	buf []byte
	err error
}

func newBufWriter(w io.Writer) *bufWriter { return &bufWriter{w: w, buf: make([]byte, 0, 1<<16)} }

func (b *bufWriter) write(p []byte) {
	if len(b.buf)+len(p) > cap(b.buf) {
		b.flush()
	}
	b.buf = append(b.buf, p...)
}

func (b *bufWriter) flush() error {
	if b.err == nil && len(b.buf) > 0 {
		_, b.err = b.w.Write(b.buf)
	}
	b.buf = b.buf[:0]
	return b.err
}

// ReadSafetensors reads and validates a safetensors file: the header is JSON with a dtype,
// shape and data_offsets per tensor (and optional __metadata__ of strings); offsets must lie
// inside the data, must not overlap, must cover it without gaps, and must match dtype×shape.
// F32, F16 and BF16 are read (converted to float32).
func ReadSafetensors(path string) (map[string]Tensor, map[string]string, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	ts, md, err := ParseSafetensors(buf)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	return ts, md, nil
}

// ParseSafetensors is ReadSafetensors on bytes.
func ParseSafetensors(buf []byte) (map[string]Tensor, map[string]string, error) {
	if len(buf) < 8 {
		return nil, nil, fmt.Errorf("not a safetensors file: %d bytes, need at least 8", len(buf))
	}
	hn := binary.LittleEndian.Uint64(buf[:8])
	if hn > MaxHeaderBytes || hn > uint64(len(buf)-8) {
		return nil, nil, fmt.Errorf("corrupt safetensors file: header size %d exceeds the file (%d bytes) "+
			"or the %d byte limit", hn, len(buf), MaxHeaderBytes)
	}
	hj := buf[8 : 8+hn]
	if len(bytes.TrimSpace(hj)) == 0 || bytes.TrimSpace(hj)[0] != '{' {
		return nil, nil, fmt.Errorf("corrupt safetensors file: header is not a JSON object")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hj, &raw); err != nil {
		return nil, nil, fmt.Errorf("corrupt safetensors header: %w", err)
	}
	body := buf[8+hn:]
	var md map[string]string
	type span struct {
		name       string
		begin, end uint64
	}
	var spans []span
	ts := map[string]Tensor{}
	for name, r := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(r, &md); err != nil {
				return nil, nil, fmt.Errorf("corrupt safetensors header: "+
					"__metadata__ must map strings to strings: %w", err)
			}
			continue
		}
		var e stEntry
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, nil, fmt.Errorf("corrupt safetensors header: tensor %s: %w", name, err)
		}
		size, ok := dtypeSize[e.DType]
		if !ok {
			return nil, nil, fmt.Errorf("safetensors tensor %s: dtype %q is not supported (F32, F16, BF16)",
				name, e.DType)
		}
		n := uint64(1)
		for _, d := range e.Shape {
			if d < 0 {
				return nil, nil, fmt.Errorf("corrupt safetensors header: tensor %s has a negative dimension in %v",
					name, e.Shape)
			}
			n *= uint64(d)
		}
		b, en := e.Offsets[0], e.Offsets[1]
		if en < b || en > uint64(len(body)) {
			return nil, nil, fmt.Errorf("corrupt safetensors file: tensor %s data_offsets [%d, %d] "+
				"outside the %d data bytes", name, b, en, len(body))
		}
		if en-b != n*size {
			return nil, nil, fmt.Errorf("corrupt safetensors file: tensor %s has %d bytes, %s%v needs %d",
				name, en-b, e.DType, e.Shape, n*size)
		}
		spans = append(spans, span{name, b, en})
		ts[name] = Tensor{DType: e.DType, Shape: e.Shape, F32: decode(e.DType, body[b:en], int(n))}
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].begin != spans[j].begin {
			return spans[i].begin < spans[j].begin
		}
		return spans[i].end < spans[j].end
	})
	var pos uint64
	for _, s := range spans {
		if s.begin < pos {
			return nil, nil, fmt.Errorf("corrupt safetensors file: tensor %s [%d, %d] overlaps the previous tensor",
				s.name, s.begin, s.end)
		}
		if s.begin > pos {
			return nil, nil, fmt.Errorf("corrupt safetensors file: %d unused bytes before tensor %s",
				s.begin-pos, s.name)
		}
		pos = s.end
	}
	if pos != uint64(len(body)) {
		return nil, nil, fmt.Errorf("corrupt safetensors file: the tensors cover %d of %d data bytes "+
			"(truncated or padded)", pos, len(body))
	}
	return ts, md, nil
}

func decode(dtype string, b []byte, n int) []float32 {
	out := make([]float32, n)
	switch dtype {
	case "F32":
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case "BF16":
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
	case "F16":
		for i := range out {
			out[i] = f16(binary.LittleEndian.Uint16(b[2*i:]))
		}
	}
	return out
}

// f16 converts an IEEE half to float32.
func f16(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		v := float32(mant) / 1024 / 16384
		if sign != 0 {
			return -v
		}
		return v
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}

// Save writes dir/config.json and dir/model.safetensors: SaveHF without a tokenizer, the
// trained length max_position_embeddings and transformers' default label name.
func Save(dir string, w *Weights) error {
	_, err := SaveHF(dir, w, HFExport{})
	return err
}

// ignored are checkpoint entries transformers may write that carry nothing of ours.
func ignored(name string) bool {
	return name == "cls.predictions.decoder.weight" || name == "cls.predictions.decoder.bias" ||
		strings.HasSuffix(name, "position_ids")
}

// Load reads dir/config.json and dir/model.safetensors. The heads present in the checkpoint
// are loaded; every tensor must have the shape the config gives it (the error names the
// tensor), and every encoder tensor must be there. Unused lists checkpoint tensors the model
// does not use.
func Load(dir string) (w *Weights, unused []string, err error) {
	c, err := LoadConfig(dir)
	if err != nil {
		return nil, nil, err
	}
	p := filepath.Join(dir, SafetensorsFile)
	ts, _, err := ReadSafetensors(p)
	if err != nil {
		return nil, nil, err
	}
	_, cls := ts["classifier.weight"]
	_, mlm := ts["cls.predictions.bias"]
	w = &Weights{Config: c, Heads: Heads{Classifier: cls, MLM: mlm}, Data: map[string][]float32{}}
	w.Specs = Spec(c, w.Heads)
	used := map[string]bool{}
	for _, s := range w.Specs {
		t, ok := ts[s.Name]
		if !ok {
			return nil, nil, fmt.Errorf("load %s: tensor %s is missing (config.json asks for it)", p, s.Name)
		}
		if !slices.Equal(t.Shape, s.Shape) {
			return nil, nil, fmt.Errorf("load %s: tensor %s has shape %s but config.json gives %s: "+
				"the config does not match the checkpoint",
				p, s.Name, shapeString(t.Shape), shapeString(s.Shape))
		}
		w.Data[s.Name] = t.F32
		used[s.Name] = true
	}
	for n := range ts {
		if !used[n] && !ignored(n) {
			unused = append(unused, n)
		}
	}
	sort.Strings(unused)
	if err := w.check(); err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", p, err)
	}
	return w, unused, nil
}

// WithHeads returns weights for heads h: tensors w already has are kept, the rest are
// initialised as NewWeights would (seed), and newly lists the initialised ones, as
// transformers' "newly initialized" warning does.
func (w *Weights) WithHeads(h Heads, seed uint64) (out *Weights, newly []string, err error) {
	fresh, err := NewWeights(w.Config, h, seed)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range fresh.Specs {
		if v, ok := w.Data[s.Name]; ok && len(v) == s.Size() {
			fresh.Data[s.Name] = append([]float32(nil), v...)
		} else {
			newly = append(newly, s.Name)
		}
	}
	return fresh, newly, nil
}
