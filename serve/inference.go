package serve

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/internal/buildinfo"
	inferencepb "github.com/medseq/medseq/proto/inference"
)

// Tensor names of medseq models in the Open Inference Protocol.
const (
	InputCodes          = "codes"
	InputInputIDs       = "input_ids"
	InputPredictionTime = "prediction_time"
	InputBirthDate      = "birth_date"
	InputSex            = "sex"
	InputSubjectID      = "subject_id"
	// InputValues is FP32, the shape of a [batch, length] codes input: each event's numeric
	// value (a lab result), NaN for none. Optional; models trained with last values read it.
	InputValues       = "values"
	OutputProbability = "probability"
	OutputRawScore    = "raw_score"
	OutputDecision    = "decision"
)

type inference struct {
	inferencepb.UnimplementedGRPCInferenceServiceServer
	s *Server
}

func (in *inference) ServerLive(context.Context, *inferencepb.ServerLiveRequest) (*inferencepb.ServerLiveResponse, error) {
	return &inferencepb.ServerLiveResponse{Live: true}, nil
}

func (in *inference) ServerReady(context.Context, *inferencepb.ServerReadyRequest) (*inferencepb.ServerReadyResponse, error) {
	in.s.mu.Lock()
	draining := in.s.draining
	in.s.mu.Unlock()
	return &inferencepb.ServerReadyResponse{Ready: in.s.repo.Ready() && !draining}, nil
}

func (in *inference) ModelReady(ctx context.Context, req *inferencepb.ModelReadyRequest) (*inferencepb.ModelReadyResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "name: required")
	}
	if err := checkLen("name", req.GetName(), MaxNameBytes); err != nil {
		return nil, toStatus(err, "", "", "")
	}
	if err := checkLen("version", req.GetVersion(), MaxNameBytes); err != nil {
		return nil, toStatus(err, "", "", "")
	}
	_, err := in.s.repo.Resolve(req.GetName(), req.GetVersion())
	return &inferencepb.ModelReadyResponse{Ready: err == nil}, nil
}

func (in *inference) ServerMetadata(context.Context, *inferencepb.ServerMetadataRequest) (*inferencepb.ServerMetadataResponse, error) {
	return &inferencepb.ServerMetadataResponse{Name: "medseq", Version: buildinfo.Get().Version, Extensions: []string{}}, nil
}

func (in *inference) ModelMetadata(ctx context.Context, req *inferencepb.ModelMetadataRequest) (*inferencepb.ModelMetadataResponse, error) {
	v, err := in.s.resolve(ctx, "name", req.GetName(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	m := in.s.repo.Models()[v.Name]
	var versions []string
	if m != nil {
		versions = m.SortedVersions()
	}
	tm := func(name, dt string, shape ...int64) *inferencepb.ModelMetadataResponse_TensorMetadata {
		return &inferencepb.ModelMetadataResponse_TensorMetadata{Name: name, Datatype: dt, Shape: shape}
	}
	return &inferencepb.ModelMetadataResponse{
		Name: v.Name, Versions: versions, Platform: "medseq_" + v.Manifest.Kind,
		Inputs: []*inferencepb.ModelMetadataResponse_TensorMetadata{
			tm(InputCodes, "BYTES", -1), tm(InputPredictionTime, "BYTES", -1), tm(InputBirthDate, "BYTES", -1),
			tm(InputSex, "BYTES", -1), tm(InputSubjectID, "BYTES", -1), tm(InputInputIDs, "INT64", -1, -1),
			tm(InputValues, "FP32", -1, -1),
		},
		Outputs: []*inferencepb.ModelMetadataResponse_TensorMetadata{
			tm(OutputProbability, "FP32", -1), tm(OutputRawScore, "FP32", -1), tm(OutputDecision, "BOOL", -1),
		},
	}, nil
}

// tensor is a decoded input tensor.
type tensor struct {
	field  string
	shape  []int64
	bytes  [][]byte
	ints   []int64
	floats []float32
}

// decodeTensor checks an input's datatype, shape and contents (typed or raw).
func decodeTensor(i int, t *inferencepb.ModelInferRequest_InferInputTensor, raw [][]byte, wantType string, maxElems int) (*tensor, error) {
	field := fmt.Sprintf("inputs[%d]", i)
	if t.GetDatatype() != wantType {
		return nil, badField(field+".datatype", "input %q must be %s", t.GetName(), wantType)
	}
	shape := t.GetShape()
	if len(shape) == 0 || len(shape) > 2 {
		return nil, badField(field+".shape", "input %q must have 1 or 2 dimensions", t.GetName())
	}
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return nil, badField(field+".shape", "negative dimension")
		}
		if d > int64(maxElems) || n*d > int64(maxElems) {
			return nil, badField(field+".shape", "more than %d elements", maxElems)
		}
		n *= d
	}
	out := &tensor{field: field, shape: shape}
	c := t.GetContents()
	switch {
	case raw != nil:
		if i >= len(raw) {
			return nil, badField("raw_input_contents", "has %d entries, fewer than the inputs", len(raw))
		}
		if c != nil && (len(c.GetBytesContents()) > 0 || len(c.GetInt64Contents()) > 0 || len(c.GetFp32Contents()) > 0) {
			return nil, badField(field+".contents", "must be empty when raw_input_contents is used")
		}
		b := raw[i]
		if wantType == "BYTES" {
			for len(b) > 0 {
				if len(b) < 4 {
					return nil, badField(fmt.Sprintf("raw_input_contents[%d]", i), "truncated length prefix")
				}
				l := binary.LittleEndian.Uint32(b)
				b = b[4:]
				if uint64(l) > uint64(len(b)) {
					return nil, badField(fmt.Sprintf("raw_input_contents[%d]", i), "element longer than the contents")
				}
				out.bytes = append(out.bytes, b[:l])
				b = b[l:]
				if int64(len(out.bytes)) > n {
					break
				}
			}
		} else if wantType == "FP32" {
			if len(b)%4 != 0 {
				return nil, badField(fmt.Sprintf("raw_input_contents[%d]", i), "length not a multiple of 4 for FP32")
			}
			for j := 0; j+4 <= len(b); j += 4 {
				out.floats = append(out.floats, math.Float32frombits(binary.LittleEndian.Uint32(b[j:])))
			}
		} else {
			if len(b)%8 != 0 {
				return nil, badField(fmt.Sprintf("raw_input_contents[%d]", i), "length not a multiple of 8 for INT64")
			}
			for j := 0; j+8 <= len(b); j += 8 {
				out.ints = append(out.ints, int64(binary.LittleEndian.Uint64(b[j:])))
			}
		}
	case wantType == "BYTES":
		out.bytes = c.GetBytesContents()
	case wantType == "FP32":
		out.floats = c.GetFp32Contents()
	default:
		out.ints = c.GetInt64Contents()
	}
	got := int64(len(out.bytes) + len(out.ints) + len(out.floats))
	if got != n {
		return nil, badField(field+".shape", "shape %v holds %d elements, the contents %d", shape, n, got)
	}
	return out, nil
}

// rows splits a tensor's elements into its rows (first dimension).
func (t *tensor) rowLen() int {
	if len(t.shape) == 2 {
		return int(t.shape[1])
	}
	return 1
}

func (t *tensor) batch() int { return int(t.shape[0]) }

// inferSubjects decodes a ModelInferRequest into subjects.
func (in *inference) inferSubjects(v *Version, req *inferencepb.ModelInferRequest, table *data.Codes) ([]*subject, error) {
	lim := in.s.limits
	raw := req.GetRawInputContents()
	if len(raw) == 0 {
		raw = nil
	}
	if raw != nil && len(raw) != len(req.GetInputs()) {
		return nil, badField("raw_input_contents", "has %d entries for %d inputs", len(raw), len(req.GetInputs()))
	}
	maxElems := lim.MaxBatch * lim.MaxCodes
	ts := map[string]*tensor{}
	for i, t := range req.GetInputs() {
		want := "BYTES"
		switch t.GetName() {
		case InputCodes, InputPredictionTime, InputBirthDate, InputSex, InputSubjectID:
		case InputInputIDs:
			want = "INT64"
		case InputValues:
			want = "FP32"
		default:
			return nil, badField(fmt.Sprintf("inputs[%d].name", i), "unknown input %q (want %s, %s, %s, %s, %s, %s or %s)", truncate(t.GetName(), 64),
				InputCodes, InputInputIDs, InputPredictionTime, InputBirthDate, InputSex, InputSubjectID, InputValues)
		}
		if ts[t.GetName()] != nil {
			return nil, badField(fmt.Sprintf("inputs[%d].name", i), "input %q given twice", t.GetName())
		}
		d, err := decodeTensor(i, t, raw, want, maxElems)
		if err != nil {
			return nil, err
		}
		ts[t.GetName()] = d
	}
	codesT, idsT := ts[InputCodes], ts[InputInputIDs]
	switch {
	case codesT == nil && idsT == nil:
		return nil, badField("inputs", "need a %q (BYTES) or %q (INT64) input", InputCodes, InputInputIDs)
	case codesT != nil && idsT != nil:
		return nil, badField("inputs", "give %q or %q, not both", InputCodes, InputInputIDs)
	}
	main := codesT
	if main == nil {
		main = idsT
		if len(main.shape) != 2 {
			return nil, badField(main.field+".shape", "input %q must be [batch, length]", InputInputIDs)
		}
	}
	valsT := ts[InputValues]
	if valsT != nil && (codesT == nil || len(codesT.shape) != 2 || !slices.Equal(valsT.shape, codesT.shape)) {
		return nil, badField(valsT.field+".shape", "input %q must have the shape of a [batch, length] %q input", InputValues, InputCodes)
	}
	b := main.batch()
	if b == 0 {
		return nil, badField(main.field+".shape", "empty batch")
	}
	if b > lim.MaxBatch {
		return nil, badField(main.field+".shape", "batch of %d, more than the server's limit of %d", b, lim.MaxBatch)
	}
	per := func(name string, max int) ([][]byte, error) {
		t := ts[name]
		if t == nil {
			return nil, nil
		}
		if t.batch() != b || t.rowLen() != 1 {
			return nil, badField(t.field+".shape", "input %q must be [%d] (one per subject)", name, b)
		}
		for i, e := range t.bytes {
			if len(e) > max {
				return nil, badField(fmt.Sprintf("inputs[%s][%d]", name, i), "longer than %d bytes", max)
			}
		}
		return t.bytes, nil
	}
	pts, err := per(InputPredictionTime, MaxTimeBytes)
	if err != nil {
		return nil, err
	}
	if pts == nil {
		return nil, badField("inputs", "input %q (BYTES [batch]) is required", InputPredictionTime)
	}
	births, err := per(InputBirthDate, MaxTimeBytes)
	if err != nil {
		return nil, err
	}
	sexes, err := per(InputSex, MaxSexBytes)
	if err != nil {
		return nil, err
	}
	ids, err := per(InputSubjectID, MaxIDBytes)
	if err != nil {
		return nil, err
	}
	at := func(xs [][]byte, i int) string {
		if xs == nil {
			return ""
		}
		return string(xs[i])
	}
	subs := make([]*subject, b)
	w := main.rowLen()
	vocab := v.Scorer.Tokenizer().Vocab
	for i := 0; i < b; i++ {
		var items []eventItem
		switch {
		case codesT != nil && len(codesT.shape) == 1:
			items = parseCodeItems(string(codesT.bytes[i]))
		case codesT != nil:
			for j, e := range codesT.bytes[i*w : (i+1)*w] {
				s := strings.TrimSpace(string(e))
				if s == "" {
					continue
				}
				it := splitCodeItem(s)
				if valsT != nil {
					if v := valsT.floats[i*w+j]; !math.IsNaN(float64(v)) {
						if math.IsInf(float64(v), 0) {
							return nil, badField(fmt.Sprintf("%s.contents[%d]", valsT.field, i*w+j), "infinite value")
						}
						it.value, it.hasValue = v, true
					}
				}
				items = append(items, it)
			}
		default:
			for j, id := range idsT.ints[i*w : (i+1)*w] {
				if id < 0 || id >= int64(vocab.Len()) {
					return nil, badField(fmt.Sprintf("%s.contents[%d]", idsT.field, i*w+j), "token id outside the vocabulary [0, %d)", vocab.Len())
				}
				if vocab.IsSpecial(int32(id)) {
					continue
				}
				items = append(items, eventItem{code: data.ParseCodeText(vocab.Token(int32(id)))}) // a token is a code's text form
			}
		}
		field := fmt.Sprintf("%s[%d]", main.field, i)
		sub, err := decodeSubject(table, items, at(pts, i), at(births, i), at(sexes, i), at(ids, i), lim, "", field, &v.Manifest.Demographics)
		if err != nil {
			if fe, ok := err.(*fieldError); ok && strings.HasPrefix(fe.field, "prediction_time") {
				fe.field = fmt.Sprintf("inputs[%s][%d]", InputPredictionTime, i)
			} else if ok && strings.HasPrefix(fe.field, "birth_date") {
				fe.field = fmt.Sprintf("inputs[%s][%d]", InputBirthDate, i)
			} else if ok && strings.HasPrefix(fe.field, "sex") {
				fe.field = fmt.Sprintf("inputs[%s][%d]", InputSex, i)
			}
			return nil, err
		}
		subs[i] = sub
	}
	return subs, nil
}

func (in *inference) ModelInfer(ctx context.Context, req *inferencepb.ModelInferRequest) (*inferencepb.ModelInferResponse, error) {
	v, err := in.s.resolve(ctx, "model_name", req.GetModelName(), req.GetModelVersion())
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for i, o := range req.GetOutputs() {
		switch o.GetName() {
		case OutputProbability, OutputRawScore, OutputDecision:
			want[o.GetName()] = true
		default:
			return nil, status.Errorf(codes.InvalidArgument, "outputs[%d].name: unknown output %q (want %s, %s or %s)", i,
				truncate(o.GetName(), 64), OutputProbability, OutputRawScore, OutputDecision)
		}
	}
	if len(want) == 0 {
		want = map[string]bool{OutputProbability: true, OutputRawScore: true, OutputDecision: true}
	}
	id := req.GetId()
	if err := checkLen("id", id, MaxIDBytes); err != nil {
		return nil, toStatus(err, "", "", "")
	}
	table := data.NewCodes()
	subs, err := in.inferSubjects(v, req, table)
	if err != nil {
		return nil, toStatus(err, "", "", "")
	}
	rid := id
	if rid == "" {
		rid = pickID(ctx, "")
	}
	res, err := in.s.score(ctx, "ModelInfer", v, table, subs, rid)
	if err != nil {
		return nil, err
	}
	b := int64(len(res))
	resp := &inferencepb.ModelInferResponse{ModelName: v.Name, ModelVersion: v.Version, Id: id}
	useRaw := len(req.GetRawInputContents()) > 0
	addF32 := func(name string, f func(r scored) float64) {
		vals := make([]float32, len(res))
		for i, r := range res {
			vals[i] = float32(f(r))
		}
		o := &inferencepb.ModelInferResponse_InferOutputTensor{Name: name, Datatype: "FP32", Shape: []int64{b}}
		if useRaw {
			buf := make([]byte, 4*len(vals))
			for i, x := range vals {
				binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
			}
			resp.RawOutputContents = append(resp.RawOutputContents, buf)
		} else {
			o.Contents = &inferencepb.InferTensorContents{Fp32Contents: vals}
		}
		resp.Outputs = append(resp.Outputs, o)
	}
	if want[OutputProbability] {
		addF32(OutputProbability, func(r scored) float64 { return r.prob })
	}
	if want[OutputRawScore] {
		addF32(OutputRawScore, func(r scored) float64 { return r.raw })
	}
	if want[OutputDecision] {
		th := v.Threshold
		vals := make([]bool, len(res))
		for i, r := range res {
			vals[i] = r.prob >= th
		}
		o := &inferencepb.ModelInferResponse_InferOutputTensor{Name: OutputDecision, Datatype: "BOOL", Shape: []int64{b}}
		if useRaw {
			buf := make([]byte, len(vals))
			for i, x := range vals {
				if x {
					buf[i] = 1
				}
			}
			resp.RawOutputContents = append(resp.RawOutputContents, buf)
		} else {
			o.Contents = &inferencepb.InferTensorContents{BoolContents: vals}
		}
		resp.Outputs = append(resp.Outputs, o)
	}
	return resp, nil
}
