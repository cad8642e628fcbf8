package serve

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/medseq/medseq/data"
	inferencepb "github.com/medseq/medseq/proto/inference"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
)

// InferRequest turns Predict requests into one Open Inference Protocol request: "codes"
// BYTES [B] of "CODE@TIME ..." lines, "prediction_time", "birth_date", "sex" and
// "subject_id" BYTES [B]; when any event has a numeric value, "codes" is [B, L] (one
// "CODE@TIME" per element) with "values" FP32 [B, L] beside it.
func InferRequest(model, version string, reqs []*medseqv1.PredictRequest) *inferencepb.ModelInferRequest {
	b := int64(len(reqs))
	col := func(name string, f func(r *medseqv1.PredictRequest) string) *inferencepb.ModelInferRequest_InferInputTensor {
		vals := make([][]byte, len(reqs))
		for i, r := range reqs {
			vals[i] = []byte(f(r))
		}
		return &inferencepb.ModelInferRequest_InferInputTensor{Name: name, Datatype: "BYTES", Shape: []int64{b},
			Contents: &inferencepb.InferTensorContents{BytesContents: vals}}
	}
	out := &inferencepb.ModelInferRequest{ModelName: model, ModelVersion: version,
		Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
			col(InputCodes, func(r *medseqv1.PredictRequest) string { return CodesLine(r.GetEvents()) }),
			col(InputPredictionTime, (*medseqv1.PredictRequest).GetPredictionTime),
			col(InputBirthDate, (*medseqv1.PredictRequest).GetBirthDate),
			col(InputSex, (*medseqv1.PredictRequest).GetSex),
			col(InputSubjectID, (*medseqv1.PredictRequest).GetSubjectId),
		}}
	// Numeric values need one element per event: codes as [batch, length] ("" pads) and an
	// FP32 values input of the same shape (NaN for none).
	width, valued := 0, false
	for _, r := range reqs {
		width = max(width, len(r.GetEvents()))
		for _, e := range r.GetEvents() {
			valued = valued || e.NumericValue != nil
		}
	}
	if !valued {
		return out
	}
	codes := make([][]byte, len(reqs)*width)
	vals := make([]float32, len(reqs)*width)
	for i, r := range reqs {
		for j := range width {
			k := i*width + j
			codes[k], vals[k] = []byte{}, float32(math.NaN())
			if j >= len(r.GetEvents()) {
				continue
			}
			e := r.GetEvents()[j]
			var sb strings.Builder
			writeCodeItem(&sb, e, false)
			codes[k] = []byte(sb.String())
			if e.NumericValue != nil {
				vals[k] = e.GetNumericValue()
			}
		}
	}
	shape := []int64{b, int64(width)}
	out.Inputs[0] = &inferencepb.ModelInferRequest_InferInputTensor{Name: InputCodes, Datatype: "BYTES", Shape: shape,
		Contents: &inferencepb.InferTensorContents{BytesContents: codes}}
	out.Inputs = append(out.Inputs, &inferencepb.ModelInferRequest_InferInputTensor{Name: InputValues, Datatype: "FP32",
		Shape: shape, Contents: &inferencepb.InferTensorContents{Fp32Contents: vals}})
	return out
}

// CodesLine writes events as "CODE@TIME CODE@TIME=VALUE CODE ..." (a static row has no @TIME,
// and so carries no value; a value is written to round-trip a float32 exactly), what
// ParseCodes and the one-line "codes" input read.
func CodesLine(evs []*medseqv1.Event) string {
	var sb strings.Builder
	for i, e := range evs {
		if i > 0 {
			sb.WriteByte(' ')
		}
		writeCodeItem(&sb, e, true)
	}
	return sb.String()
}

// ItemCode is how a code is written in a CODE@TIME item: its text form (data.CodeText:
// whitespace, special-token names and a '%' before two hex digits %-escaped) with '@' written
// %40, so any code is one whitespace-free item that parses back to it.
func ItemCode(code string) string {
	t := data.CodeText(code)
	if strings.IndexByte(t, '@') >= 0 {
		t = strings.ReplaceAll(t, "@", "%40")
	}
	return t
}

func writeCodeItem(sb *strings.Builder, e *medseqv1.Event, withValue bool) {
	sb.WriteString(ItemCode(e.GetCode()))
	if e.GetTime() == "" {
		return
	}
	sb.WriteByte('@')
	sb.WriteString(e.GetTime())
	if withValue && e.NumericValue != nil {
		sb.WriteByte('=')
		sb.WriteString(strconv.FormatFloat(float64(e.GetNumericValue()), 'g', -1, 32))
	}
}

// RawInferRequest moves a request's typed contents to raw_input_contents, as Triton clients
// send them (BYTES elements with 4-byte little-endian length prefixes).
func RawInferRequest(req *inferencepb.ModelInferRequest) *inferencepb.ModelInferRequest {
	out := &inferencepb.ModelInferRequest{ModelName: req.ModelName, ModelVersion: req.ModelVersion, Id: req.Id,
		Outputs: req.Outputs}
	for _, in := range req.Inputs {
		var buf []byte
		c := in.GetContents()
		for _, b := range c.GetBytesContents() {
			buf = binary.LittleEndian.AppendUint32(buf, uint32(len(b)))
			buf = append(buf, b...)
		}
		for _, x := range c.GetInt64Contents() {
			buf = binary.LittleEndian.AppendUint64(buf, uint64(x))
		}
		for _, x := range c.GetFp32Contents() {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
		}
		out.Inputs = append(out.Inputs, &inferencepb.ModelInferRequest_InferInputTensor{Name: in.Name, Datatype: in.Datatype,
			Shape: in.Shape})
		out.RawInputContents = append(out.RawInputContents, buf)
	}
	return out
}

// RawFP32 reads an FP32 output from a response, raw or typed.
func RawFP32(resp *inferencepb.ModelInferResponse, name string) ([]float32, error) {
	for i, o := range resp.GetOutputs() {
		if o.GetName() != name {
			continue
		}
		if o.GetDatatype() != "FP32" {
			return nil, fmt.Errorf("output %q is %s", name, o.GetDatatype())
		}
		if i < len(resp.GetRawOutputContents()) {
			b := resp.GetRawOutputContents()[i]
			out := make([]float32, len(b)/4)
			for j := range out {
				out[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
			}
			return out, nil
		}
		return o.GetContents().GetFp32Contents(), nil
	}
	return nil, fmt.Errorf("no output %q", name)
}

// RawBool reads a BOOL output of a ModelInfer response (raw or typed contents), such as
// OutputDecision.
func RawBool(resp *inferencepb.ModelInferResponse, name string) ([]bool, error) {
	for i, o := range resp.GetOutputs() {
		if o.GetName() != name {
			continue
		}
		if o.GetDatatype() != "BOOL" {
			return nil, fmt.Errorf("output %q is %s", name, o.GetDatatype())
		}
		if i < len(resp.GetRawOutputContents()) {
			b := resp.GetRawOutputContents()[i]
			out := make([]bool, len(b))
			for j, x := range b {
				out[j] = x != 0
			}
			return out, nil
		}
		return o.GetContents().GetBoolContents(), nil
	}
	return nil, fmt.Errorf("no output %q", name)
}
