package serve

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	inferencepb "github.com/medseq/medseq/proto/inference"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
)

// InferRequest turns Predict requests into one Open Inference Protocol request: "codes"
// BYTES [B] of "CODE@TIME ..." lines, "prediction_time", "birth_date", "sex" and
// "subject_id" BYTES [B].
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
	return &inferencepb.ModelInferRequest{ModelName: model, ModelVersion: version, Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
		col(InputCodes, func(r *medseqv1.PredictRequest) string { return CodesLine(r.GetEvents()) }),
		col(InputPredictionTime, (*medseqv1.PredictRequest).GetPredictionTime),
		col(InputBirthDate, (*medseqv1.PredictRequest).GetBirthDate),
		col(InputSex, (*medseqv1.PredictRequest).GetSex),
		col(InputSubjectID, (*medseqv1.PredictRequest).GetSubjectId),
	}}
}

// CodesLine writes events as "CODE@TIME CODE ..." (a static row has no @TIME).
func CodesLine(evs []*medseqv1.Event) string {
	var sb strings.Builder
	for i, e := range evs {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(e.GetCode())
		if e.GetTime() != "" {
			sb.WriteByte('@')
			sb.WriteString(e.GetTime())
		}
	}
	return sb.String()
}

// RawInferRequest moves a request's typed contents to raw_input_contents, as Triton clients
// send them (BYTES elements with 4-byte little-endian length prefixes).
func RawInferRequest(req *inferencepb.ModelInferRequest) *inferencepb.ModelInferRequest {
	out := &inferencepb.ModelInferRequest{ModelName: req.ModelName, ModelVersion: req.ModelVersion, Id: req.Id, Outputs: req.Outputs}
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
		out.Inputs = append(out.Inputs, &inferencepb.ModelInferRequest_InferInputTensor{Name: in.Name, Datatype: in.Datatype, Shape: in.Shape})
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
