package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/scorer"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
)

// scored is one subject's answer.
type scored struct {
	raw, prob      float64
	unknown, trunc int
	pieced         int // codes read as a parent code and suffix pieces
	used, censored int
}

// score censors, scores and calibrates subjects with one version, with metrics and audit.
func (s *Server) score(ctx context.Context, method string, v *Version, table *data.Codes, subs []*subject,
	reqID string) ([]scored, error) {
	start := time.Now()
	if err := s.acquire(ctx, v.Name); err != nil {
		return nil, err
	}
	defer func() { <-s.slots }()
	if ctx.Err() != nil {
		return nil, ctxStatus(ctx)
	}
	out, err := s.scoreCore(v, table, subs)
	if err != nil {
		return nil, err
	}
	caller := Caller(ctx)
	var recs []AuditRecord
	if s.audit != nil {
		now := time.Now().UTC()
		for i := range out {
			recs = append(recs, AuditRecord{Time: now, RequestID: reqID, Caller: caller, Method: method, Model: v.Name,
				Version: v.Version, SubjectHash: s.audit.hash(subs[i].subjectID), Score: out[i].prob})
		}
	}
	if err := s.writeAudit(recs); err != nil {
		return nil, err
	}
	m := s.metrics
	m.histogram(m.BatchSize, 2, labels3{method, v.Name, ""}).Observe(float64(len(subs)))
	m.counter(m.Inferences, 2, labels3{v.Name, v.Version, ""}).Add(float64(len(subs)))
	s.countCodes(v, out)
	m.histogram(m.Latency, 3, labels3{method, v.Name, v.Version}).Observe(time.Since(start).Seconds())
	return out, nil
}

// countCodes adds the scored histories' codes to medseq_codes_total by how the version's
// tokenizer read them: whole, pieced or unknown.
func (s *Server) countCodes(v *Version, out []scored) {
	var whole, pieced, unknown int
	for _, r := range out {
		whole, pieced, unknown = whole+r.used-r.pieced-r.unknown, pieced+r.pieced, unknown+r.unknown
	}
	m := s.metrics
	for _, k := range [...]struct {
		kind string
		n    int
	}{{"whole", whole}, {"pieced", pieced}, {"unknown", unknown}} {
		m.counter(m.Codes, 3, labels3{v.Name, v.Version, k.kind}).Add(float64(k.n))
	}
}

// writeAudit appends records; an answer that cannot be audited is not given.
func (s *Server) writeAudit(recs []AuditRecord) error {
	if err := s.audit.Write(recs...); err != nil {
		s.log.Error("audit log write failed", "err", err)
		return status.Error(codes.Internal, "audit log unavailable")
	}
	return nil
}

// scoreCore censors, scores and calibrates subjects whose codes come from table.
func (s *Server) scoreCore(v *Version, table *data.Codes, subs []*subject) ([]scored, error) {
	ins := make([]scorer.Input, len(subs))
	out := make([]scored, len(subs))
	for i, sub := range subs {
		in, censored := sub.toInput(v.Gap)
		ins[i] = in
		out[i].used, out[i].censored = len(in.Events), censored
	}
	res, err := v.Scorer.Score(table, ins)
	if err != nil || len(res) != len(subs) {
		s.log.Error("scoring failed", "model", v.Name, "version", v.Version, "err", err)
		return nil, status.Error(codes.Internal, "scoring failed")
	}
	for i, r := range res {
		out[i].raw = r.Probability
		out[i].prob = v.Calibrate(r.Probability)
		out[i].unknown, out[i].trunc, out[i].pieced = r.Unknown, r.Truncated, r.Pieced
	}
	return out, nil
}

type predictor struct {
	medseqv1.UnimplementedPredictorServer
	s *Server
}

func (p *predictor) response(v *Version, r scored, reqID string) *medseqv1.PredictResponse {
	th := v.Threshold
	return &medseqv1.PredictResponse{ModelName: v.Name, ModelVersion: v.Version, Probability: r.prob, RawScore: r.raw,
		Decision: r.prob >= th, Threshold: th, UnknownCodes: int32(r.unknown), TruncatedCodes: int32(r.trunc),
		EventsUsed: int32(r.used), EventsCensored: int32(r.censored), RequestId: reqID}
}

// pickID is the request's id: the request's own (its length checked already), else the
// x-request-id header's, else a fresh one.
func pickID(ctx context.Context, fromReq string) string {
	if fromReq != "" {
		return fromReq
	}
	if id := requestID(ctx); id != "" {
		return id
	}
	return newRequestID()
}

func (p *predictor) Predict(ctx context.Context, req *medseqv1.PredictRequest) (*medseqv1.PredictResponse, error) {
	if err := checkRequestStrings("", req); err != nil {
		return nil, toStatus(err, "", "", "")
	}
	v, err := p.s.resolve(ctx, "model_name", req.GetModelName(), req.GetModelVersion())
	if err != nil {
		return nil, err
	}
	// An unbatched call's code table lives only for the call: it comes from a pool. A batched
	// call's table stays with its job until a batch worker has read it, so it is never pooled.
	batched := p.s.batched(v)
	var table *data.Codes
	if batched {
		table = data.NewCodes()
	} else {
		table, _ = p.s.tables.Get().(*data.Codes)
		if table == nil {
			table = data.NewCodesSize(64)
		}
		defer func() {
			if table.Len() <= maxPooledTable {
				table.Reset()
				p.s.tables.Put(table)
			}
		}()
	}
	sub, err := decodePredict(table, req, p.s.limits, "", &v.Manifest.Demographics)
	if err != nil {
		return nil, toStatus(err, "", "", "")
	}
	id := pickID(ctx, req.GetRequestId())
	var r scored
	if batched {
		r, err = p.s.submit(ctx, "Predict", v, table, sub, id)
	} else {
		var res []scored
		if res, err = p.s.score(ctx, "Predict", v, table, []*subject{sub}, id); err == nil {
			r = res[0]
		}
	}
	if err != nil {
		return nil, err
	}
	return p.response(v, r, id), nil
}

func (p *predictor) PredictBatch(ctx context.Context,
	req *medseqv1.PredictBatchRequest) (*medseqv1.PredictBatchResponse, error) {
	v, err := p.s.resolve(ctx, "model_name", req.GetModelName(), req.GetModelVersion())
	if err != nil {
		return nil, err
	}
	n := len(req.GetRequests())
	if n == 0 {
		return nil, status.Error(codes.InvalidArgument, "requests: empty")
	}
	if n > p.s.limits.MaxBatch {
		return nil, status.Errorf(codes.InvalidArgument, "requests: %d subjects, more than the server's limit of %d", n,
			p.s.limits.MaxBatch)
	}
	table := data.NewCodes()
	subs := make([]*subject, n)
	for i, r := range req.GetRequests() {
		pre := fmt.Sprintf("requests[%d].", i)
		if err := checkRequestStrings(pre, r); err != nil {
			return nil, toStatus(err, "", "", "")
		}
		if r.GetModelName() != "" && r.GetModelName() != req.GetModelName() {
			return nil, status.Errorf(codes.InvalidArgument, "%smodel_name: differs from the batch's model_name", pre)
		}
		if r.GetModelVersion() != "" && r.GetModelVersion() != req.GetModelVersion() {
			return nil, status.Errorf(codes.InvalidArgument, "%smodel_version: differs from the batch's model_version", pre)
		}
		if subs[i], err = decodePredict(table, r, p.s.limits, pre, &v.Manifest.Demographics); err != nil {
			return nil, toStatus(err, "", "", "")
		}
	}
	id := pickID(ctx, "")
	res, err := p.s.score(ctx, "PredictBatch", v, table, subs, id)
	if err != nil {
		return nil, err
	}
	out := &medseqv1.PredictBatchResponse{Responses: make([]*medseqv1.PredictResponse, n)}
	for i, r := range res {
		rid := req.GetRequests()[i].GetRequestId()
		if rid == "" {
			rid = id
		}
		out.Responses[i] = p.response(v, r, rid)
	}
	return out, nil
}

func (p *predictor) PredictStream(
	stream grpc.BidiStreamingServer[medseqv1.PredictRequest, medseqv1.PredictResponse]) error {
	ctx := stream.Context()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := p.Predict(ctx, req)
		if err != nil {
			return err
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func (p *predictor) ListModels(ctx context.Context,
	_ *medseqv1.ListModelsRequest) (*medseqv1.ListModelsResponse, error) {
	models := p.s.repo.Models()
	out := &medseqv1.ListModelsResponse{}
	for _, name := range sortedKeys(models) {
		m := models[name]
		ms := &medseqv1.ModelSummary{Name: name, Versions: m.SortedVersions()}
		if m.Serving != nil {
			ms.ServingVersion, ms.Kind = m.Serving.Version, m.Serving.Manifest.Kind
		}
		out.Models = append(out.Models, ms)
	}
	return out, nil
}

func (p *predictor) GetModel(ctx context.Context, req *medseqv1.GetModelRequest) (*medseqv1.ModelInfo, error) {
	v, err := p.s.resolve(ctx, "name", req.GetName(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	return modelInfo(v), nil
}

func modelInfo(v *Version) *medseqv1.ModelInfo {
	m := v.Manifest
	info := &medseqv1.ModelInfo{Name: v.Name, Version: v.Version, Kind: m.Kind, Metrics: m.Metrics,
		Calibration: v.CalibrationMethod(), VocabSize: int32(m.VocabSize), RunId: m.RunID, Threshold: v.Threshold,
		GapMicros: v.Gap, CodeVersion: m.CodeVersion, ThresholdRule: m.OperatingPoint.String(),
		ThresholdOverridden: v.Overridden}
	if v.Overridden {
		info.ThresholdRule = "override (serve --threshold); manifest: " + info.ThresholdRule
	}
	if info.VocabSize == 0 && v.Scorer.Tokenizer() != nil {
		info.VocabSize = int32(v.Scorer.Tokenizer().Vocab.Len())
	}
	if !m.Created.IsZero() {
		info.Created = m.Created.UTC().Format(time.RFC3339Nano)
	}
	return info
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// maxPooledTable: tables that grew past this many codes are dropped rather than pooled.
const maxPooledTable = 4096
