package train

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/internal/testpy"
	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/model/scorer"
	"github.com/medseq/medseq/modelrepo"
	"github.com/medseq/medseq/tokenize"
)

// The HuggingFace handoff, across languages: HuggingFace's tokenizers library (its Node
// bindings, tokenize/testdata/hf) loads bert/tokenizer.json and encodes every held-out history
// to the ids medseq scores, and the independent PyTorch BERT (model/bert/testdata/reference.py)
// on bert/config.json + bert/model.safetensors gives medseq's served logits. Python's
// transformers is not installed where the tests run, so AutoTokenizer's files
// (tokenizer_config.json, special_tokens_map.json) are checked structurally here and in
// model/bert's TestSaveHFFolder.

const (
	hfParityDir  = "../tokenize/testdata/hf"
	hfReference  = "../model/bert/testdata/reference.py"
	hfCorpusFile = "held_out.txt"
)

// hfNodeTokenizers returns node with the npm package tokenizers installed (as tokenize's
// parity test does: skipped without them, installed or failed under CI).
func hfNodeTokenizers(t *testing.T) string {
	t.Helper()
	ci := os.Getenv("CI") != "" && os.Getenv("CI") != "false"
	node, err := exec.LookPath("node")
	if err != nil {
		if ci {
			t.Fatalf("CI: node is not installed: run scripts/hf-deps.sh")
		}
		t.Skip("node is not installed (scripts/hf-deps.sh installs it and the HuggingFace tokenizers package)")
	}
	if _, err := os.Stat(filepath.Join(hfParityDir, "node_modules", "tokenizers",
		"package.json")); errors.Is(err, os.ErrNotExist) {
		if !ci {
			t.Skipf("%s/node_modules is missing: run scripts/hf-deps.sh", hfParityDir)
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = hfParityDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("CI: npm ci in %s: %v\n%s", hfParityDir, err, out)
		}
	}
	return node
}

// historyText is a history as a line of codes, as a user hands it to a HuggingFace tokenizer:
// the codes in order, each in its text form (data.CodeText), with [SEP] between days when the
// tokenizer separates visits (static rows are one visit before the first day), as medseq's
// encoder does.
func historyText(codes *data.Codes, evs []data.Event, visitSep bool) string {
	var b strings.Builder
	lastDay := int64(math.MinInt64)
	for i, e := range evs {
		if visitSep {
			day := int64(math.MinInt64 + 1)
			if !e.IsStatic() {
				day = data.FloorDiv(e.Time, data.MicrosPerDay)
			}
			if i > 0 && day != lastDay {
				b.WriteString(" " + tokenize.SepToken)
			}
			lastDay = day
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(data.CodeText(codes.Name(e.Code)))
	}
	return b.String()
}

// buildTokVisits is buildTok with visit separators on.
func buildTokVisits(ctx context.Context, meds, cohort, out string, bc tokenize.BuildConfig) error {
	return buildTokWith(ctx, meds, cohort, out, bc, true)
}

// TestClassifyHFFolderMatchesHuggingFace trains tiny classifiers on a tokenizer whose
// tokenizer.json truncates at 512 (the `tokenize build` default) while the model has 32
// positions, the user's case: from scratch, from a pretrained encoder with a shorter
// --max-len (24: the model trained shorter than its positions), and with mean pooling. For
// every history of the cohort (every held-out one, the longest included), HuggingFace's
// tokenizers on bert/tokenizer.json gives medseq's ids, never more than
// max_position_embeddings, padded with [PAD]; PyTorch's BERT on those ids gives
// medseq's served logit.
func TestClassifyHFFolderMatchesHuggingFace(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two models and runs node and PyTorch")
	}
	python := testpy.Require(t, "python3-torch", "torch")
	node := hfNodeTokenizers(t)
	f := getFixture(t)
	ctx := context.Background()
	root := t.TempDir()
	tokDir := filepath.Join(root, "tok512")
	if err := buildTokVisits(ctx, f.meds, f.cohort, tokDir, tokenize.DefaultBuildConfig()); err != nil {
		t.Fatal(err)
	}

	pre := pretrainCfg(f, filepath.Join(root, "mlm"))
	pre.Tokenizer, pre.MaxSteps = tokDir, 4
	if _, err := BERTPretrain(ctx, pre, quietLog(), nil); err != nil {
		t.Fatal(err)
	}
	// The pretraining folder is a masked-LM HuggingFace folder with its tokenizer.
	pc := readJSONFile(t, filepath.Join(modelrepo.BERTPath(pre.Out), bert.ConfigFile))
	if a, _ := pc["architectures"].([]any); len(a) != 1 || a[0] != "BertForMaskedLM" || pc["id2label"] != nil {
		t.Errorf("pretrain config.json: architectures %v, id2label %v", pc["architectures"], pc["id2label"])
	}
	for _, name := range []string{tokenize.HFFile, tokenize.HFTokenizerConfigFile, tokenize.HFSpecialTokensFile,
		tokenize.VocabFile} {
		if _, err := os.Stat(filepath.Join(modelrepo.BERTPath(pre.Out), name)); err != nil {
			t.Errorf("pretrain bert/ lacks %s", name)
		}
	}

	// Mean pooling: transformers cannot pool so, the independent PyTorch BERT (reference.py)
	// reads medseq_pooling and can.
	for _, tc := range []struct {
		name    string
		init    bool
		maxLen  int
		pooling string
	}{{"scratch", false, 32, bert.PoolingCLS}, {"init", true, 24, bert.PoolingCLS},
		{"mean", false, 32, bert.PoolingMean}} {
		t.Run(tc.name, func(t *testing.T) {
			c := classifyCfg(f, filepath.Join(root, tc.name))
			c.Tokenizer, c.MaxLen, c.Pooling = tokDir, tc.maxLen, tc.pooling
			// Long enough to rank the training histories (AUROC near 1), though this tiny model's
			// logits stay within about 1e-3 of each other.
			c.LR, c.MaxSteps, c.EvalEvery, c.Dropout, c.WeightDecay = 3e-3, 60, 60, 0, 0
			if tc.init {
				c.Init, c.Config, c.Hidden, c.Layers, c.Heads, c.Intermediate = pre.Out, "", 0, 0, 0, 0
			}
			if _, err := BERTClassify(ctx, c, quietLog(), nil); err != nil {
				t.Fatal(err)
			}
			checkHFFolder(t, python, node, f, c.Out, tc.maxLen)
		})
	}
}

func readJSONFile(t *testing.T, path string) map[string]any {
	t.Helper()
	buf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

func checkHFFolder(t *testing.T, python, node string, f fixture, out string, maxLen int) {
	bdir := modelrepo.BERTPath(out)
	cfg := checkHFConfig(t, bdir, maxLen)
	positions := int(cfg["max_position_embeddings"].(float64))
	h := cohortHistories(t, f, out, maxLen, positions)
	theirs, mask := checkHFTokenizer(t, node, bdir, h, int(cfg["pad_token_id"].(float64)), positions, maxLen)
	checkPyTorchLogits(t, python, out, h, theirs, mask, maxLen)
}

// checkHFConfig checks config.json and tokenizer_config.json and returns config.json.
func checkHFConfig(t *testing.T, bdir string, maxLen int) map[string]any {
	t.Helper()
	cfg := readJSONFile(t, filepath.Join(bdir, bert.ConfigFile))
	if cfg["max_position_embeddings"] != float64(32) || cfg["medseq_max_length"] != float64(maxLen) ||
		cfg["problem_type"] != "multi_label_classification" || cfg["num_labels"] != float64(1) {
		t.Fatalf("config.json: max_position_embeddings %v, medseq_max_length %v, problem_type %v, num_labels %v",
			cfg["max_position_embeddings"], cfg["medseq_max_length"], cfg["problem_type"], cfg["num_labels"])
	}
	if l, _ := cfg["id2label"].(map[string]any); l["0"] != "ICD10/E11 or SNOMED/44054006" {
		t.Errorf("id2label %v, want the cohort's targets", cfg["id2label"])
	}
	tcfg := readJSONFile(t, filepath.Join(bdir, tokenize.HFTokenizerConfigFile))
	if tcfg["model_max_length"] != float64(maxLen) || tcfg["truncation_side"] != "left" ||
		tcfg["tokenizer_class"] != tokenize.HFTokenizerClass {
		t.Errorf("tokenizer_config.json %v", tcfg)
	}
	return cfg
}

// histories are every history of the cohort as medseq's served scorer sees it, as text, and
// as medseq encodes it at the trained length.
type histories struct {
	ds                          *data.Dataset
	ins                         []scorer.Input
	lines                       []string
	ours                        [][]int32
	pad                         int32
	heldOut, longest, truncated int
}

// cohortHistories reads every history of the fixture's cohort (the held-out split is small
// here, so the training and tuning splits too) and checks that its text encodes as its
// events do, some far beyond the model's positions.
func cohortHistories(t *testing.T, f fixture, out string, maxLen, positions int) *histories {
	t.Helper()
	ds, err := data.Open(f.meds)
	if err != nil {
		t.Fatal(err)
	}
	cohort, err := data.LoadCohort(f.cohort)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := tokenize.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	h := &histories{ds: ds, pad: tok.Vocab.Pad}
	err = cohort.Sequences(context.Background(), ds, nil, func(s data.Sequence) error {
		if s.Label.Split == data.SplitHeldOut {
			h.heldOut++
		}
		h.ins = append(h.ins, scorer.Input{Events: s.Events, Birth: s.Label.Birth,
			PredictionTime: s.Label.PredictionTime})
		h.lines = append(h.lines, historyText(ds.Codes, s.Events, tok.VisitSeparators))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.ins) < 20 || h.heldOut == 0 {
		t.Fatalf("%d histories, %d held out: too few to prove much", len(h.ins), h.heldOut)
	}
	cm := tok.NewCodeMap(ds.Codes)
	h.ours = make([][]int32, len(h.ins))
	for i, in := range h.ins {
		full := cm.Encode(tokenize.Input{Events: in.Events, Birth: in.Birth, PredictionTime: in.PredictionTime},
			tokenize.Options{VisitSeparators: tok.VisitSeparators})
		h.longest = max(h.longest, len(full.IDs))
		enc := cm.Encode(tokenize.Input{Events: in.Events, Birth: in.Birth, PredictionTime: in.PredictionTime},
			tokenize.Options{MaxLen: maxLen, VisitSeparators: tok.VisitSeparators})
		if enc.Truncated > 0 {
			h.truncated++
		}
		h.ours[i] = enc.IDs
		if text := tok.EncodeText(h.lines[i], tokenize.Options{MaxLen: maxLen}); !slices.Equal(text.IDs, enc.IDs) {
			t.Fatalf("history %d: the text encodes to %v, the events to %v", i, text.IDs, enc.IDs)
		}
	}
	if h.longest <= 2*positions || h.truncated < 5 {
		t.Fatalf("the longest held-out history has %d tokens and %d are truncated: "+
			"want some far beyond the model's %d positions", h.longest, h.truncated, positions)
	}
	return h
}

// checkHFTokenizer encodes the histories' text with HuggingFace's tokenizers in one batch
// (padded on the right to the longest with [PAD]) and checks the ids are medseq's; it returns
// them with their attention mask.
func checkHFTokenizer(t *testing.T, node, bdir string, h *histories,
	padID, positions, maxLen int) (theirs, mask [][]int32) {
	t.Helper()
	corpus := filepath.Join(t.TempDir(), hfCorpusFile)
	if err := os.WriteFile(corpus, []byte(strings.Join(h.lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, filepath.Join(hfParityDir, "encode.js"), "--chunk", strconv.Itoa(len(h.lines)+1),
		filepath.Join(bdir, tokenize.HFFile), corpus, corpus+".ids")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("encode.js: %v\n%s", err, msg)
	}
	theirs = readIDs(t, corpus+".ids")
	if len(theirs) != len(h.ours) {
		t.Fatalf("HuggingFace encoded %d histories, medseq %d", len(theirs), len(h.ours))
	}
	if int(h.pad) != padID {
		t.Fatalf("[PAD] is %d, config.json's pad_token_id %v", h.pad, padID)
	}
	width := len(theirs[0])
	mask = make([][]int32, len(theirs))
	for i, ids := range theirs {
		if len(ids) != width {
			t.Fatalf("history %d: %d ids, history 0 %d: the batch is not padded to one length", i, len(ids), width)
		}
		if len(ids) > positions {
			t.Fatalf("history %d: %d ids exceed max_position_embeddings %d (IndexError in transformers)",
				i, len(ids), positions)
		}
		n := len(ids)
		for n > 0 && ids[n-1] == h.pad {
			n--
		}
		if !slices.Equal(ids[:n], h.ours[i]) {
			t.Fatalf("history %d: HuggingFace ids %v, medseq %v", i, ids[:n], h.ours[i])
		}
		mask[i] = make([]int32, width)
		for j := range n {
			mask[i][j] = 1
		}
	}
	if width != maxLen {
		t.Errorf("the batch's longest encoding has %d ids, want the trained length %d", width, maxLen)
	}
	return theirs, mask
}

// checkPyTorchLogits runs PyTorch's BERT on bert/ over HuggingFace's ids and compares its
// logits with medseq's served scores.
func checkPyTorchLogits(t *testing.T, python, out string, h *histories, theirs, mask [][]int32, maxLen int) {
	t.Helper()
	s, err := bert.LoadScorer(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Score(h.ds.Codes, h.ins)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	inPath, outPath := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json")
	buf, _ := json.Marshal(map[string]any{"ids": theirs, "mask": mask})
	if err := os.WriteFile(inPath, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	ref := exec.Command(python, hfReference, modelrepo.BERTPath(out), inPath, outPath)
	ref.Env = append(os.Environ(), "REF_FLOAT64=1")
	if msg, err := ref.CombinedOutput(); err != nil {
		t.Fatalf("reference.py: %v\n%s", err, msg)
	}
	var got struct {
		Logits []float64 `json:"logits"`
	}
	if buf, err = os.ReadFile(outPath); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(buf, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Logits) != len(res) {
		t.Fatalf("PyTorch scored %d histories, medseq %d", len(got.Logits), len(res))
	}
	maxDiff, lo, hi := 0.0, math.Inf(1), math.Inf(-1)
	for i, r := range res {
		z := math.Log(r.Probability) - math.Log1p(-r.Probability) // medseq's logit
		maxDiff = math.Max(maxDiff, math.Abs(z-got.Logits[i]))
		lo, hi = math.Min(lo, got.Logits[i]), math.Max(hi, got.Logits[i])
		if p := 1 / (1 + math.Exp(-got.Logits[i])); math.Abs(p-r.Probability) > 1e-5 {
			t.Errorf("history %d: sigmoid(PyTorch logit) %v, medseq probability %v", i, p, r.Probability)
		}
	}
	t.Logf("%d histories, %d held out (longest %d tokens, %d truncated to %d): "+
		"max |medseq - PyTorch| logit %.3g, logits in [%.3f, %.3f]",
		len(res), h.heldOut, h.longest, h.truncated, maxLen, maxDiff, lo, hi)
	// The logits spread little, so the limit is a hundredth of their spread (float32 noise is
	// about 1e-8 here): another id or position anywhere moves a logit by more.
	if hi-lo < 1e-4 {
		t.Fatalf("logits barely vary (%v..%v): the comparison would prove little", lo, hi)
	}
	if limit := math.Min(1e-4, (hi-lo)/100); maxDiff > limit {
		t.Fatalf("medseq's served logits and PyTorch's differ by %.3g (limit %.3g)", maxDiff, limit)
	}
}

func readIDs(t *testing.T, path string) [][]int32 {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var all [][]int32
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ids []int32
		for _, w := range strings.Fields(sc.Text()) {
			n, err := strconv.ParseInt(w, 10, 32)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, int32(n))
		}
		all = append(all, ids)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return all
}
