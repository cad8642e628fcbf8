// Command e2echeck compares a running medseq server's answers with offline predictions
// (medseq predict) for the same subjects: Predict, PredictBatch and ModelInfer must agree
// with the offline calibrated probabilities to 1e-6. It also writes a Predict and a
// ModelInfer request as JSON for grpcurl. Used by scripts/e2e.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/medseq/medseq/eval"
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
	flag.Parse()
	if err := run(*addr, *meds, *cohort, *model, *offline, *n, *tol, *raw, *writeReq, *writeInfer, *writeExpect); err != nil {
		fmt.Fprintln(os.Stderr, "e2echeck:", err)
		os.Exit(1)
	}
}

func run(addr, meds, cohort, model, offline string, n int, tol float64, raw bool, writeReq, writeInfer, writeExpect string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	preds, err := eval.ReadPredictions(offline)
	if err != nil {
		return err
	}
	type key struct{ id, pt int64 }
	want := map[key]float64{}
	for _, p := range preds {
		w := p.Score
		if raw {
			if w, err = strconv.ParseFloat(p.Attrs["raw_probability"], 64); err != nil {
				return fmt.Errorf("%s: subject %d: no raw_probability (%v)", offline, p.SubjectID, err)
			}
		}
		want[key{p.SubjectID, p.PredictionTime}] = w
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
	batch := &medseqv1.PredictBatchRequest{ModelName: model}
	for i, r := range reqs {
		w, ok := want[key{r.Label.SubjectID, r.Label.PredictionTime}]
		if !ok {
			return fmt.Errorf("subject %d at %d has no offline prediction", r.Label.SubjectID, r.Label.PredictionTime)
		}
		exp[i] = w
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
	for i, r := range reqs {
		resp, err := pc.Predict(ctx, r.Request)
		if err != nil {
			return fmt.Errorf("Predict: %w", err)
		}
		if err := check("Predict", i, pick(resp.Probability, resp.RawScore)); err != nil {
			return err
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
	fmt.Printf("e2echeck: %d labelled subjects: Predict, PredictBatch and ModelInfer match offline predictions (max |diff| %.3g <= %g)\n", len(reqs), worst, tol)
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
