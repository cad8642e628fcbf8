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
	"github.com/medseq/medseq/tokenize"
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

func (in *inference) ServerLive(context.Context,
	*inferencepb.ServerLiveRequest) (*inferencepb.ServerLiveResponse, error) {
	return &inferencepb.ServerLiveResponse{Live: true}, nil
}

func (in *inference) ServerReady(context.Context,
	*inferencepb.ServerReadyRequest) (*inferencepb.ServerReadyResponse, error) {
	in.s.mu.Lock()
	draining := in.s.draining
	in.s.mu.Unlock()
	return &inferencepb.ServerReadyResponse{Ready: in.s.repo.Ready() && !draining}, nil
}

func (in *inference) ModelReady(ctx context.Context,
	req *inferencepb.ModelReadyRequest) (*inferencepb.ModelReadyResponse, error) {
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

func (in *inference) ServerMetadata(context.Context,
	*inferencepb.ServerMetadataRequest) (*inferencepb.ServerMetadataResponse, error) {
	return &inferencepb.ServerMetadataResponse{Name: "medseq", Version: buildinfo.Get().Version,
		Extensions: []string{}}, nil
}

func (in *inference) ModelMetadata(ctx context.Context,
	req *inferencepb.ModelMetadataRequest) (*inferencepb.ModelMetadataResponse, error) {
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
func decodeTensor(i int, t *inferencepb.ModelInferRequest_InferInputTensor, raw [][]byte, wantType string,
	maxElems int) (*tensor, error) {
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
		if err := out.decodeRaw(raw[i], i, wantType, n); err != nil {
			return nil, err
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

// decodeRaw decodes raw_input_contents[i], the contents of an input of datatype wantType
// and n elements: BYTES elements each after its 4-byte little-endian length (reading stops
// past n elements), little-endian FP32 or INT64 values.
func (t *tensor) decodeRaw(b []byte, i int, wantType string, n int64) error {
	switch wantType {
	case "BYTES":
		for len(b) > 0 {
			if len(b) < 4 {
				return badField(rawField(i), "truncated length prefix")
			}
			l := binary.LittleEndian.Uint32(b)
			b = b[4:]
			if uint64(l) > uint64(len(b)) {
				return badField(rawField(i), "element longer than the contents")
			}
			t.bytes = append(t.bytes, b[:l])
			b = b[l:]
			if int64(len(t.bytes)) > n {
				break
			}
		}
	case "FP32":
		if len(b)%4 != 0 {
			return badField(rawField(i), "length not a multiple of 4 for FP32")
		}
		for j := 0; j+4 <= len(b); j += 4 {
			t.floats = append(t.floats, math.Float32frombits(binary.LittleEndian.Uint32(b[j:])))
		}
	default:
		if len(b)%8 != 0 {
			return badField(rawField(i), "length not a multiple of 8 for INT64")
		}
		for j := 0; j+8 <= len(b); j += 8 {
			t.ints = append(t.ints, int64(binary.LittleEndian.Uint64(b[j:])))
		}
	}
	return nil
}

// rawField names raw_input_contents[i].
func rawField(i int) string { return fmt.Sprintf("raw_input_contents[%d]", i) }

// rows splits a tensor's elements into its rows (first dimension).
func (t *tensor) rowLen() int {
	if len(t.shape) == 2 {
		return int(t.shape[1])
	}
	return 1
}

func (t *tensor) batch() int { return int(t.shape[0]) }

// inferSubjects decodes a ModelInferRequest into subjects.
func (in *inference) inferSubjects(v *Version, req *inferencepb.ModelInferRequest,
	table *data.Codes) ([]*subject, error) {
	lim := in.s.limits
	ts, err := decodeInputs(req, lim.MaxBatch*lim.MaxCodes)
	if err != nil {
		return nil, err
	}
	x, err := ts.check(lim.MaxBatch)
	if err != nil {
		return nil, err
	}
	subs := make([]*subject, x.batch)
	vocab := v.Scorer.Tokenizer().Vocab
	for i := range subs {
		items, err := x.items(i, vocab)
		if err != nil {
			return nil, err
		}
		field := fmt.Sprintf("%s[%d]", x.main.field, i)
		sub, err := decodeSubject(table, items, at(x.times, i), at(x.births, i), at(x.sexes, i), at(x.subjectIDs, i),
			lim, "", field, &v.Manifest.Demographics)
		if err != nil {
			return nil, inputField(err, i)
		}
		subs[i] = sub
	}
	return subs, nil
}

// at is xs[i] as a string, "" when xs is nil (an input not given).
func at(xs [][]byte, i int) string {
	if xs == nil {
		return ""
	}
	return string(xs[i])
}

// inputField renames the field of subject i's error from decodeSubject after the input it
// came from.
func inputField(err error, i int) error {
	fe, ok := err.(*fieldError)
	switch {
	case ok && strings.HasPrefix(fe.field, "prediction_time"):
		fe.field = fmt.Sprintf("inputs[%s][%d]", InputPredictionTime, i)
	case ok && strings.HasPrefix(fe.field, "birth_date"):
		fe.field = fmt.Sprintf("inputs[%s][%d]", InputBirthDate, i)
	case ok && strings.HasPrefix(fe.field, "sex"):
		fe.field = fmt.Sprintf("inputs[%s][%d]", InputSex, i)
	}
	return err
}

// The inputs a request may give, as indexes into inputTensors.
const (
	inCodes = iota
	inInputIDs
	inPredictionTime
	inBirthDate
	inSex
	inSubjectID
	inValues
	nInputs
)

// inputTensors are a request's decoded inputs by kind (nil when not given).
type inputTensors [nInputs]*tensor

// inputKind is the kind and datatype of the input named name; ok is false for an unknown name.
func inputKind(name string) (kind int, datatype string, ok bool) {
	switch name {
	case InputCodes:
		return inCodes, "BYTES", true
	case InputInputIDs:
		return inInputIDs, "INT64", true
	case InputPredictionTime:
		return inPredictionTime, "BYTES", true
	case InputBirthDate:
		return inBirthDate, "BYTES", true
	case InputSex:
		return inSex, "BYTES", true
	case InputSubjectID:
		return inSubjectID, "BYTES", true
	case InputValues:
		return inValues, "FP32", true
	}
	return 0, "", false
}

// decodeInputs decodes each of a request's inputs (typed or raw contents), each known and
// given once, of at most maxElems elements.
func decodeInputs(req *inferencepb.ModelInferRequest, maxElems int) (inputTensors, error) {
	raw := req.GetRawInputContents()
	if len(raw) == 0 {
		raw = nil
	}
	var ts inputTensors
	if raw != nil && len(raw) != len(req.GetInputs()) {
		return ts, badField("raw_input_contents", "has %d entries for %d inputs", len(raw), len(req.GetInputs()))
	}
	for i, t := range req.GetInputs() {
		kind, want, ok := inputKind(t.GetName())
		if !ok {
			return ts, badField(fmt.Sprintf("inputs[%d].name", i), "unknown input %q (want %s, %s, %s, %s, %s, %s or %s)",
				truncate(t.GetName(), 64),
				InputCodes, InputInputIDs, InputPredictionTime, InputBirthDate, InputSex, InputSubjectID, InputValues)
		}
		if ts[kind] != nil {
			return ts, badField(fmt.Sprintf("inputs[%d].name", i), "input %q given twice", t.GetName())
		}
		d, err := decodeTensor(i, t, raw, want, maxElems)
		if err != nil {
			return ts, err
		}
		ts[kind] = d
	}
	return ts, nil
}

// inferBatch is a request's inputs checked against each other: one subject per row of main
// (the codes or input_ids input), each with a prediction time and maybe a birth date, sex
// and subject id (nil when the input is not given).
type inferBatch struct {
	main, codes, ids, values         *tensor
	batch                            int
	times, births, sexes, subjectIDs [][]byte
}

// check checks the inputs' shapes against each other and a batch of at most maxBatch.
func (ts *inputTensors) check(maxBatch int) (inferBatch, error) {
	x := inferBatch{codes: ts[inCodes], ids: ts[inInputIDs], values: ts[inValues]}
	switch {
	case x.codes == nil && x.ids == nil:
		return x, badField("inputs", "need a %q (BYTES) or %q (INT64) input", InputCodes, InputInputIDs)
	case x.codes != nil && x.ids != nil:
		return x, badField("inputs", "give %q or %q, not both", InputCodes, InputInputIDs)
	}
	x.main = x.codes
	if x.main == nil {
		x.main = x.ids
		if len(x.main.shape) != 2 {
			return x, badField(x.main.field+".shape", "input %q must be [batch, length]", InputInputIDs)
		}
	}
	if v := x.values; v != nil && (x.codes == nil || len(x.codes.shape) != 2 || !slices.Equal(v.shape, x.codes.shape)) {
		return x, badField(v.field+".shape", "input %q must have the shape of a [batch, length] %q input",
			InputValues, InputCodes)
	}
	x.batch = x.main.batch()
	if x.batch == 0 {
		return x, badField(x.main.field+".shape", "empty batch")
	}
	if x.batch > maxBatch {
		return x, badField(x.main.field+".shape", "batch of %d, more than the server's limit of %d", x.batch, maxBatch)
	}
	var err error
	if x.times, err = ts.perSubject(inPredictionTime, InputPredictionTime, x.batch, MaxTimeBytes); err != nil {
		return x, err
	}
	if x.times == nil {
		return x, badField("inputs", "input %q (BYTES [batch]) is required", InputPredictionTime)
	}
	if x.births, err = ts.perSubject(inBirthDate, InputBirthDate, x.batch, MaxTimeBytes); err != nil {
		return x, err
	}
	if x.sexes, err = ts.perSubject(inSex, InputSex, x.batch, MaxSexBytes); err != nil {
		return x, err
	}
	if x.subjectIDs, err = ts.perSubject(inSubjectID, InputSubjectID, x.batch, MaxIDBytes); err != nil {
		return x, err
	}
	return x, nil
}

// perSubject is the elements of a [batch] BYTES input of one element per subject, each at
// most max bytes; nil when the input is not given.
func (ts *inputTensors) perSubject(kind int, name string, batch, max int) ([][]byte, error) {
	t := ts[kind]
	if t == nil {
		return nil, nil
	}
	if t.batch() != batch || t.rowLen() != 1 {
		return nil, badField(t.field+".shape", "input %q must be [%d] (one per subject)", name, batch)
	}
	for i, e := range t.bytes {
		if len(e) > max {
			return nil, badField(fmt.Sprintf("inputs[%s][%d]", name, i), "longer than %d bytes", max)
		}
	}
	return t.bytes, nil
}

// items is subject i's events: its codes on one line, its row of [batch, length] codes (and
// values), or its row of token ids, specials left out.
func (x *inferBatch) items(i int, vocab *tokenize.Vocab) ([]eventItem, error) {
	w := x.main.rowLen()
	switch {
	case x.codes != nil && len(x.codes.shape) == 1:
		return parseCodeItems(string(x.codes.bytes[i])), nil
	case x.codes != nil:
		var items []eventItem
		for j, e := range x.codes.bytes[i*w : (i+1)*w] {
			s := strings.TrimSpace(string(e))
			if s == "" {
				continue
			}
			it := splitCodeItem(s)
			if x.values != nil {
				if v := x.values.floats[i*w+j]; !math.IsNaN(float64(v)) {
					if math.IsInf(float64(v), 0) {
						return nil, badField(fmt.Sprintf("%s.contents[%d]", x.values.field, i*w+j), "infinite value")
					}
					it.value, it.hasValue = v, true
				}
			}
			items = append(items, it)
		}
		return items, nil
	}
	var items []eventItem
	for j, id := range x.ids.ints[i*w : (i+1)*w] {
		if id < 0 || id >= int64(vocab.Len()) {
			return nil, badField(fmt.Sprintf("%s.contents[%d]", x.ids.field, i*w+j),
				"token id outside the vocabulary [0, %d)", vocab.Len())
		}
		if vocab.IsSpecial(int32(id)) {
			continue
		}
		// A token is a code's text form.
		items = append(items, eventItem{code: data.ParseCodeText(vocab.Token(int32(id)))})
	}
	return items, nil
}

// outputSet is the outputs a ModelInferRequest asks for.
type outputSet struct {
	probability, rawScore, decision bool
}

// requestedOutputs is the outputs req names, all three when it names none.
func requestedOutputs(req *inferencepb.ModelInferRequest) (outputSet, error) {
	var want outputSet
	for i, o := range req.GetOutputs() {
		switch o.GetName() {
		case OutputProbability:
			want.probability = true
		case OutputRawScore:
			want.rawScore = true
		case OutputDecision:
			want.decision = true
		default:
			return want, status.Errorf(codes.InvalidArgument, "outputs[%d].name: unknown output %q (want %s, %s or %s)", i,
				truncate(o.GetName(), 64), OutputProbability, OutputRawScore, OutputDecision)
		}
	}
	if want == (outputSet{}) {
		want = outputSet{probability: true, rawScore: true, decision: true}
	}
	return want, nil
}

func (in *inference) ModelInfer(ctx context.Context,
	req *inferencepb.ModelInferRequest) (*inferencepb.ModelInferResponse, error) {
	v, err := in.s.resolve(ctx, "model_name", req.GetModelName(), req.GetModelVersion())
	if err != nil {
		return nil, err
	}
	want, err := requestedOutputs(req)
	if err != nil {
		return nil, err
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
	out := inferOutputs{resp: &inferencepb.ModelInferResponse{ModelName: v.Name, ModelVersion: v.Version, Id: id},
		raw: len(req.GetRawInputContents()) > 0, batch: int64(len(res))}
	if want.probability {
		out.addFP32(OutputProbability, res, func(r scored) float64 { return r.prob })
	}
	if want.rawScore {
		out.addFP32(OutputRawScore, res, func(r scored) float64 { return r.raw })
	}
	if want.decision {
		out.addDecision(res, v.Threshold)
	}
	return out.resp, nil
}

// inferOutputs builds a ModelInferResponse's outputs, as raw contents when the request's
// inputs were.
type inferOutputs struct {
	resp  *inferencepb.ModelInferResponse
	raw   bool
	batch int64
}

// addFP32 adds the FP32 output name, f of each result.
func (o *inferOutputs) addFP32(name string, res []scored, f func(r scored) float64) {
	vals := make([]float32, len(res))
	for i, r := range res {
		vals[i] = float32(f(r))
	}
	t := &inferencepb.ModelInferResponse_InferOutputTensor{Name: name, Datatype: "FP32", Shape: []int64{o.batch}}
	if o.raw {
		buf := make([]byte, 4*len(vals))
		for i, x := range vals {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
		}
		o.resp.RawOutputContents = append(o.resp.RawOutputContents, buf)
	} else {
		t.Contents = &inferencepb.InferTensorContents{Fp32Contents: vals}
	}
	o.resp.Outputs = append(o.resp.Outputs, t)
}

// addDecision adds the BOOL output decision: the probability at or above the threshold.
func (o *inferOutputs) addDecision(res []scored, threshold float64) {
	vals := make([]bool, len(res))
	for i, r := range res {
		vals[i] = r.prob >= threshold
	}
	t := &inferencepb.ModelInferResponse_InferOutputTensor{Name: OutputDecision, Datatype: "BOOL", Shape: []int64{o.batch}}
	if o.raw {
		buf := make([]byte, len(vals))
		for i, x := range vals {
			if x {
				buf[i] = 1
			}
		}
		o.resp.RawOutputContents = append(o.resp.RawOutputContents, buf)
	} else {
		t.Contents = &inferencepb.InferTensorContents{BoolContents: vals}
	}
	o.resp.Outputs = append(o.resp.Outputs, t)
}
