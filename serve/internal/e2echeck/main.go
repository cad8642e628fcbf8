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

// options are the command's flags.
type options struct {
	addr, meds, cohort, model, offline, folder string
	n                                          int
	tol                                        float64
	raw                                        bool
	writeReq, writeInfer, writeExpect          string
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:8500", "server")
	flag.StringVar(&o.meds, "meds", "", "MEDS dataset")
	flag.StringVar(&o.cohort, "cohort", "", "cohort folder")
	flag.StringVar(&o.model, "model", "t2d-xgboost", "model name")
	flag.StringVar(&o.offline, "offline", "", "offline predictions (medseq predict --out)")
	flag.IntVar(&o.n, "n", 50, "held-out subjects to compare")
	flag.Float64Var(&o.tol, "tol", 1e-6, "largest allowed difference")
	flag.BoolVar(&o.raw, "raw", false, "compare the raw (uncalibrated) probability with the offline "+
		"raw_probability column: a steep calibration step magnifies the last bits of a BERT's raw score")
	flag.StringVar(&o.writeReq, "write-predict", "", "write one Predict request as JSON here")
	flag.StringVar(&o.writeInfer, "write-infer", "", "write one ModelInfer request as JSON here")
	flag.StringVar(&o.writeExpect, "write-expected", "", "write the expected probability of that request here")
	flag.StringVar(&o.folder, "folder", "", "the model's version folder: its manifest's operating point and "+
		"demographics, and its predictions_<split>.parquet (with .extra.parquet), are checked too")
	report := flag.String("report", "", "an eval report's metrics.json: its deployed point for --folder must be "+
		"the manifest's, deciding as the folder's held-out predictions do")
	flag.Parse()
	if *report != "" {
		if err := checkReport(*report, o.folder); err != nil {
			fmt.Fprintln(os.Stderr, "e2echeck:", err)
			os.Exit(1)
		}
	}
	if err := run(o); err != nil {
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
	fmt.Printf("e2echeck: %d labels: the model folder's predictions match offline (max |diff| %.3g <= %g)\n", n, worst,
		tol)
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
			return fmt.Errorf("report %s, model %s: deployed point %v (%s) with %v positives; the manifest's is %v, "+
				"with %d positives in the folder's %s predictions",
				path, m.Name, th.Value, th.Method, c.TP+c.FP, man.OperatingPoint.Threshold, positives, r.Split)
		}
		fmt.Printf("e2echeck: report %s: %s's deployed point is the manifest's %.4g (%d of %d %s rows positive, "+
			"as in the folder)\n",
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

func run(o options) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := prepare(ctx, o)
	if err != nil {
		return err
	}
	cc, err := grpc.NewClient(o.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	pc := medseqv1.NewPredictorClient(cc)
	if c.info, err = pc.GetModel(ctx, &medseqv1.GetModelRequest{Name: o.model}); err != nil {
		return fmt.Errorf("GetModel: %w", err)
	}
	if c.man != nil && (c.info.Threshold != c.man.OperatingPoint.Threshold || c.info.ThresholdOverridden) {
		return fmt.Errorf("GetModel: threshold %v (overridden %v), the manifest's is %v",
			c.info.Threshold, c.info.ThresholdOverridden, c.man.OperatingPoint.Threshold)
	}
	if err := c.checkPredict(ctx, pc); err != nil {
		return err
	}
	if err := c.checkPredictBatch(ctx, pc); err != nil {
		return err
	}
	if err := c.checkModelInfer(ctx, inferencepb.NewGRPCInferenceServiceClient(cc)); err != nil {
		return err
	}
	fmt.Printf("e2echeck: %d labelled subjects: Predict (age and sex as fields, events or both), PredictBatch and "+
		"ModelInfer match offline predictions (max |diff| %.3g <= %g) and decide as they do at threshold %.4g\n",
		len(c.reqs), c.worst, o.tol, c.info.Threshold)
	return c.writeExamples()
}

// checker compares the server's answers for reqs with the offline predictions.
type checker struct {
	o      options
	man    *modelrepo.Manifest // the version folder's manifest; nil without --folder
	reqs   []serve.LabelledRequest
	exp    []float64 // the compared offline probability of each request (raw with --raw)
	expCal []float64 // the calibrated one
	batch  *medseqv1.PredictBatchRequest
	info   *medseqv1.ModelInfo
	worst  float64 // the largest difference so far
}

// prepare reads the offline predictions (checking the folder's against them with --folder)
// and builds the requests for the cohort's labels, each with its expected probability.
func prepare(ctx context.Context, o options) (*checker, error) {
	want, err := readExpected(o.offline, o.raw)
	if err != nil {
		return nil, err
	}
	c := &checker{o: o, batch: &medseqv1.PredictBatchRequest{ModelName: o.model}}
	if o.folder != "" {
		if c.man, err = modelrepo.ReadManifest(o.folder); err != nil {
			return nil, err
		}
		if err := checkFolder(o.folder, want, o.raw, o.tol); err != nil {
			return nil, err
		}
	}
	if c.reqs, err = serve.CohortRequests(ctx, o.meds, o.cohort, nil, o.n, o.model); err != nil {
		return nil, err
	}
	if len(c.reqs) == 0 {
		return nil, fmt.Errorf("no held-out labels")
	}
	c.exp = make([]float64, len(c.reqs))
	c.expCal = make([]float64, len(c.reqs))
	for i, r := range c.reqs {
		w, ok := want[key{r.Label.SubjectID, r.Label.PredictionTime}]
		if !ok {
			return nil, fmt.Errorf("subject %d at %d has no offline prediction", r.Label.SubjectID, r.Label.PredictionTime)
		}
		c.exp[i], c.expCal[i] = w.p, w.calibrated
		c.batch.Requests = append(c.batch.Requests, r.Request)
	}
	return c, nil
}

// pick is the probability compared: calibrated, or raw with --raw.
func (c *checker) pick(calibrated, rawScore float64) float64 {
	if c.o.raw {
		return rawScore
	}
	return calibrated
}

// check compares a served probability for request i with the offline one.
func (c *checker) check(what string, i int, got float64) error {
	d := math.Abs(got - c.exp[i])
	c.worst = math.Max(c.worst, d)
	if d > c.o.tol {
		return fmt.Errorf("%s subject %d: server %.9f, offline %.9f", what, c.reqs[i].Label.SubjectID, got, c.exp[i])
	}
	return nil
}

// decided checks a served decision against the offline calibrated probability at the
// operating point (a probability within tol of the threshold may go either way).
func (c *checker) decided(what string, i int, decision bool) error {
	th := c.info.Threshold
	if math.Abs(c.expCal[i]-th) > c.o.tol && decision != (c.expCal[i] >= th) {
		return fmt.Errorf("%s subject %d: decision %v, offline %.9f at threshold %v",
			what, c.reqs[i].Label.SubjectID, decision, c.expCal[i], th)
	}
	return nil
}

// checkPredict calls Predict for every request, with age and sex each of the ways.
func (c *checker) checkPredict(ctx context.Context, pc medseqv1.PredictorClient) error {
	demo := modelrepo.Demographics{Demographics: data.DefaultDemographics()}
	if c.man != nil {
		demo = c.man.Demographics
	}
	for i, r := range c.reqs {
		for way, req := range ways(r.Request, demo) {
			resp, err := pc.Predict(ctx, req)
			if err != nil {
				return fmt.Errorf("call Predict (age and sex as %s): %w", way, err)
			}
			if err := c.check("Predict (age and sex as "+way+")", i, c.pick(resp.Probability, resp.RawScore)); err != nil {
				return err
			}
			if err := c.decided("Predict (age and sex as "+way+")", i, resp.Decision); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkPredictBatch calls PredictBatch with every request.
func (c *checker) checkPredictBatch(ctx context.Context, pc medseqv1.PredictorClient) error {
	br, err := pc.PredictBatch(ctx, c.batch)
	if err != nil {
		return fmt.Errorf("PredictBatch: %w", err)
	}
	for i, resp := range br.Responses {
		if err := c.check("PredictBatch", i, c.pick(resp.Probability, resp.RawScore)); err != nil {
			return err
		}
		if err := c.decided("PredictBatch", i, resp.Decision); err != nil {
			return err
		}
	}
	return nil
}

// checkModelInfer calls ModelInfer with every request in one batch.
func (c *checker) checkModelInfer(ctx context.Context, ic inferencepb.GRPCInferenceServiceClient) error {
	ir, err := ic.ModelInfer(ctx, serve.InferRequest(c.o.model, "", c.batch.Requests))
	if err != nil {
		return fmt.Errorf("ModelInfer: %w", err)
	}
	output := serve.OutputProbability
	if c.o.raw {
		output = serve.OutputRawScore
	}
	probs, err := serve.RawFP32(ir, output)
	if err != nil {
		return err
	}
	for i, p := range probs {
		if err := c.check("ModelInfer", i, float64(p)); err != nil {
			return err
		}
	}
	decisions, err := serve.RawBool(ir, serve.OutputDecision)
	if err != nil {
		return err
	}
	for i, d := range decisions {
		if err := c.decided("ModelInfer", i, d); err != nil {
			return err
		}
	}
	return nil
}

// writeExamples writes the first request as Predict and ModelInfer JSON and its expected
// probability, where the flags ask for them.
func (c *checker) writeExamples() error {
	mo := protojson.MarshalOptions{UseProtoNames: true}
	if c.o.writeReq != "" {
		b, _ := mo.Marshal(c.reqs[0].Request)
		if err := os.WriteFile(c.o.writeReq, b, 0o644); err != nil {
			return err
		}
	}
	if c.o.writeInfer != "" {
		b, _ := mo.Marshal(serve.InferRequest(c.o.model, "", c.batch.Requests[:1]))
		if err := os.WriteFile(c.o.writeInfer, b, 0o644); err != nil {
			return err
		}
	}
	if c.o.writeExpect != "" {
		if err := os.WriteFile(c.o.writeExpect, []byte(fmt.Sprintf("%.17g\n", c.exp[0])), 0o644); err != nil {
			return err
		}
	}
	return nil
}
