// Command e2echeck compares a running medseq server's answers with offline predictions
// (medseq predict) and with the model folder's own predictions for the same subjects:
// Predict (age and sex sent as fields and events, as events only, as fields only),
// PredictBatch and ModelInfer must agree with the offline calibrated probabilities to 1e-6,
// and decide as the offline predictions do at the manifest's operating point. It also writes
// a Predict and a ModelInfer request as JSON for grpcurl. Used by scripts/e2e.sh.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/modelrepo"
	inferencepb "github.com/medseq/medseq/proto/inference"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
	"github.com/medseq/medseq/serve"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8500", "server")
	meds := flag.String("meds", "", "MEDS dataset")
	cohort := flag.String("cohort", "", "cohort folder")
	model := flag.String("model", "t2d-xgboost", "model name")
	offline := flag.String("offline", "", "offline predictions (medseq predict --out)")
	n := flag.Int("n", 50, "held-out subjects to compare")
	tol := flag.Float64("tol", 1e-6, "largest allowed difference")
	raw := flag.Bool("raw", false, "compare the raw (uncalibrated) probability with the offline raw_probability column: a steep calibration step magnifies the last bits of a BERT's raw score")
	writeReq := flag.String("write-predict", "", "write one Predict request as JSON here")
	writeInfer := flag.String("write-infer", "", "write one ModelInfer request as JSON here")
	writeExpect := flag.String("write-expected", "", "write the expected probability of that request here")
	folder := flag.String("folder", "", "the model's version folder: its manifest's operating point and demographics, and its predictions_<split>.parquet (with .extra.parquet), are checked too")
	report := flag.String("report", "", "an eval report's metrics.json: its deployed point for --folder must be the manifest's, deciding as the folder's held-out predictions do")
	flag.Parse()
	if *report != "" {
		if err := checkReport(*report, *folder); err != nil {
			fmt.Fprintln(os.Stderr, "e2echeck:", err)
			os.Exit(1)
		}
	}
	if err := run(*addr, *meds, *cohort, *model, *offline, *folder, *n, *tol, *raw, *writeReq, *writeInfer, *writeExpect); err != nil {
		fmt.Fprintln(os.Stderr, "e2echeck:", err)
		os.Exit(1)
	}
}

type key struct{ id, pt int64 }

// expected is an offline prediction: the compared probability and the calibrated one.
type expected struct{ p, calibrated float64 }

// readExpected reads a predictions file by subject and time: the calibrated probability, and
// the compared one (raw with --raw).
func readExpected(path string, raw bool) (map[key]expected, error) {
	preds, err := eval.ReadPredictions(path)
	if err != nil {
		return nil, err
	}
	out := map[key]expected{}
	for _, p := range preds {
		e := expected{p: p.Score, calibrated: p.Score}
		if raw {
			if e.p, err = strconv.ParseFloat(p.Attrs[eval.ColRawProbability], 64); err != nil {
				return nil, fmt.Errorf("%s: subject %d: no %s (%v)", path, p.SubjectID, eval.ColRawProbability, err)
			}
		}
		out[key{p.SubjectID, p.PredictionTime}] = e
	}
	return out, nil
}

// checkFolder compares offline predictions with the model folder's own split predictions:
// the same probability (to tol) for every label both hold.
func checkFolder(folder string, want map[key]expected, raw bool, tol float64) error {
	n, worst := 0, 0.0
	for _, split := range []string{data.SplitTrain, data.SplitTuning, data.SplitHeldOut} {
		got, err := readExpected(modelrepo.PredictionsFile(folder, split), raw)
		if err != nil {
			return err
		}
		for k, g := range got {
			w, ok := want[k]
			if !ok {
				continue
			}
			n++
			worst = math.Max(worst, math.Abs(g.p-w.p))
			if math.Abs(g.p-w.p) > tol {
				return fmt.Errorf("folder %s, %s, subject %d: %.9f, offline %.9f", folder, split, k.id, g.p, w.p)
			}
		}
	}
	if n == 0 {
		return fmt.Errorf("folder %s: no label in common with the offline predictions", folder)
	}
	fmt.Printf("e2echeck: %d labels: the model folder's predictions match offline (max |diff| %.3g <= %g)\n", n, worst, tol)
	return nil
}

// checkReport checks that the report's deployed point for the model folder is the manifest's
// operating point and predicts positive the same held-out rows as the folder's predictions.
func checkReport(path, folder string) error {
	if folder == "" {
		return fmt.Errorf("--report needs --folder")
	}
	buf, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var r eval.Report
	if err := json.Unmarshal(buf, &r); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	man, err := modelrepo.ReadManifest(folder)
	if err != nil {
		return err
	}
	stored, err := eval.ReadPredictions(modelrepo.PredictionsFile(folder, r.Split))
	if err != nil {
		return err
	}
	positives := 0
	for _, p := range stored {
		if p.Score >= man.OperatingPoint.Threshold {
			positives++
		}
	}
	for _, m := range r.Models {
		if filepath.Clean(m.Dir) != filepath.Clean(folder) && m.RunID != man.RunID {
			continue
		}
		th, c := m.Metrics.Threshold, m.Metrics.Sample.Confusion
		if th.Method != eval.ThresholdDeployed || th.Value != man.OperatingPoint.Threshold || int(c.TP+c.FP) != positives {
			return fmt.Errorf("report %s, model %s: deployed point %v (%s) with %v positives; the manifest's is %v, with %d positives in the folder's %s predictions",
				path, m.Name, th.Value, th.Method, c.TP+c.FP, man.OperatingPoint.Threshold, positives, r.Split)
		}
		fmt.Printf("e2echeck: report %s: %s's deployed point is the manifest's %.4g (%d of %d %s rows positive, as in the folder)\n",
			filepath.Base(filepath.Dir(path)), m.Name, th.Value, positives, len(stored), r.Split)
		return nil
	}
	return fmt.Errorf("report %s has no model from %s", path, folder)
}

// ways are the ways a history may carry age and sex: both (fields and events, as
// CohortRequests writes them), events only, fields only (demographic events removed).
func ways(r *medseqv1.PredictRequest, demo modelrepo.Demographics) map[string]*medseqv1.PredictRequest {
	events := proto.Clone(r).(*medseqv1.PredictRequest)
	events.BirthDate, events.Sex = "", ""
	fields := proto.Clone(r).(*medseqv1.PredictRequest)
	fields.Events = nil
	for _, e := range r.Events {
		if _, isSex := demo.Sex(e.Code); demo.IsBirth(e.Code) || isSex {
			continue
		}
		fields.Events = append(fields.Events, e)
	}
	return map[string]*medseqv1.PredictRequest{"fields and events": r, "events only": events, "fields only": fields}
}

func run(addr, meds, cohort, model, offline, folder string, n int, tol float64, raw bool, writeReq, writeInfer, writeExpect string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	want, err := readExpected(offline, raw)
	if err != nil {
		return err
	}
	var man *modelrepo.Manifest
	if folder != "" {
		if man, err = modelrepo.ReadManifest(folder); err != nil {
			return err
		}
		if err := checkFolder(folder, want, raw, tol); err != nil {
			return err
		}
	}
	// pick is the probability compared: calibrated, or raw with --raw.
	pick := func(calibrated, rawScore float64) float64 {
		if raw {
			return rawScore
		}
		return calibrated
	}
	output := serve.OutputProbability
	if raw {
		output = serve.OutputRawScore
	}
	reqs, err := serve.CohortRequests(ctx, meds, cohort, nil, n, model)
	if err != nil {
		return err
	}
	if len(reqs) == 0 {
		return fmt.Errorf("no held-out labels")
	}
	exp := make([]float64, len(reqs))
	expCal := make([]float64, len(reqs))
	batch := &medseqv1.PredictBatchRequest{ModelName: model}
	for i, r := range reqs {
		w, ok := want[key{r.Label.SubjectID, r.Label.PredictionTime}]
		if !ok {
			return fmt.Errorf("subject %d at %d has no offline prediction", r.Label.SubjectID, r.Label.PredictionTime)
		}
		exp[i], expCal[i] = w.p, w.calibrated
		batch.Requests = append(batch.Requests, r.Request)
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	pc := medseqv1.NewPredictorClient(cc)
	worst := 0.0
	check := func(what string, i int, got float64) error {
		d := math.Abs(got - exp[i])
		worst = math.Max(worst, d)
		if d > tol {
			return fmt.Errorf("%s subject %d: server %.9f, offline %.9f", what, reqs[i].Label.SubjectID, got, exp[i])
		}
		return nil
	}
	info, err := pc.GetModel(ctx, &medseqv1.GetModelRequest{Name: model})
	if err != nil {
		return fmt.Errorf("GetModel: %w", err)
	}
	if man != nil && (info.Threshold != man.OperatingPoint.Threshold || info.ThresholdOverridden) {
		return fmt.Errorf("GetModel: threshold %v (overridden %v), the manifest's is %v", info.Threshold, info.ThresholdOverridden, man.OperatingPoint.Threshold)
	}
	// decided checks a served decision against the offline calibrated probability at the
	// operating point (a probability within tol of the threshold may go either way).
	decided := func(what string, i int, decision bool) error {
		if math.Abs(expCal[i]-info.Threshold) > tol && decision != (expCal[i] >= info.Threshold) {
			return fmt.Errorf("%s subject %d: decision %v, offline %.9f at threshold %v", what, reqs[i].Label.SubjectID, decision, expCal[i], info.Threshold)
		}
		return nil
	}
	demo := modelrepo.Demographics{Demographics: data.DefaultDemographics()}
	if man != nil {
		demo = man.Demographics
	}
	for i, r := range reqs {
		for way, req := range ways(r.Request, demo) {
			resp, err := pc.Predict(ctx, req)
			if err != nil {
				return fmt.Errorf("call Predict (age and sex as %s): %w", way, err)
			}
			if err := check("Predict (age and sex as "+way+")", i, pick(resp.Probability, resp.RawScore)); err != nil {
				return err
			}
			if err := decided("Predict (age and sex as "+way+")", i, resp.Decision); err != nil {
				return err
			}
		}
	}
	br, err := pc.PredictBatch(ctx, batch)
	if err != nil {
		return fmt.Errorf("PredictBatch: %w", err)
	}
	for i, resp := range br.Responses {
		if err := check("PredictBatch", i, pick(resp.Probability, resp.RawScore)); err != nil {
			return err
		}
		if err := decided("PredictBatch", i, resp.Decision); err != nil {
			return err
		}
	}
	ireq := serve.InferRequest(model, "", batch.Requests)
	ir, err := inferencepb.NewGRPCInferenceServiceClient(cc).ModelInfer(ctx, ireq)
	if err != nil {
		return fmt.Errorf("ModelInfer: %w", err)
	}
	probs, err := serve.RawFP32(ir, output)
	if err != nil {
		return err
	}
	for i, p := range probs {
		if err := check("ModelInfer", i, float64(p)); err != nil {
			return err
		}
	}
	decisions, err := serve.RawBool(ir, serve.OutputDecision)
	if err != nil {
		return err
	}
	for i, d := range decisions {
		if err := decided("ModelInfer", i, d); err != nil {
			return err
		}
	}
	fmt.Printf("e2echeck: %d labelled subjects: Predict (age and sex as fields, events or both), PredictBatch and ModelInfer match offline predictions (max |diff| %.3g <= %g) and decide as they do at threshold %.4g\n",
		len(reqs), worst, tol, info.Threshold)
	mo := protojson.MarshalOptions{UseProtoNames: true}
	if writeReq != "" {
		b, _ := mo.Marshal(reqs[0].Request)
		if err := os.WriteFile(writeReq, b, 0o644); err != nil {
			return err
		}
	}
	if writeInfer != "" {
		b, _ := mo.Marshal(serve.InferRequest(model, "", batch.Requests[:1]))
		if err := os.WriteFile(writeInfer, b, 0o644); err != nil {
			return err
		}
	}
	if writeExpect != "" {
		if err := os.WriteFile(writeExpect, []byte(fmt.Sprintf("%.17g\n", exp[0])), 0o644); err != nil {
			return err
		}
	}
	return nil
}
