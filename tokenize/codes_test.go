package tokenize

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/medseq/medseq/data"
)

// realCode makes the k-th code of a code system spelled as real MEDS ETL outputs spell codes
// (MIMIC-IV through MEDS_transforms or meds_etl, eICU, EHRSHOT): spaces, trailing blanks,
// repeated slashes, dots, commas, parentheses, '%', '/' in units, non-ASCII letters, and codes
// spelled like special tokens. Deterministic in k.
func realCode(k int) string {
	x := uint32(k)*2654435761 + 777
	pick := func(xs ...string) string { return xs[int(x/7)%len(xs)] }
	switch k % 10 {
	case 0:
		return "HOSPITAL_ADMISSION//" + pick("EW EMER.", "URGENT", "DIRECT EMER.", "ELECTIVE", "OBSERVATION ADMIT") + "//" +
			pick("EMERGENCY ROOM", "PHYSICIAN REFERRAL", "TRANSFER FROM HOSPITAL", "WALK-IN/SELF REFERRAL", "CLINIC REFERRAL")
	case 1, 2:
		return fmt.Sprintf("LAB//%d//%s", 50800+x%400, pick("mg/dL", " ", "", "%", "units (pH)", "g/dL, whole blood", "mmol/L", "K/uL", "mm[Hg]", "UNK", "IU/L  "))
	case 3:
		return "MEDICATION//START//" + pick("Insulin Glargine 100 unit/mL", "Acetaminophen 500mg Tab", "Heparin (Porcine) 5000 UNIT/mL", "Metformin XR (Glucophage XR) 500 mg", "Sodium Chloride 0.9%  Flush") + fmt.Sprintf("//%d", x%7)
	case 4:
		return "TRANSFER_TO//" + pick("ward", "ED", "icu") + "//" + pick("Med/Surg", "Med/Surg/Trauma", "Neuro Intermediate", "Medical Intensive Care Unit (MICU)", "Emergency Department Observation")
	case 5:
		return fmt.Sprintf("DIAGNOSIS//ICD//%d//%c%03d", 9+x%2, 'A'+x%26, x/26%1000)
	case 6:
		return fmt.Sprintf("ICD10/%c%02d", 'A'+x%26, x/26%30) + pick("", ".9", ".65", ".1", ".00")
	case 7:
		return fmt.Sprintf("NOTE//%s//%d", pick("Größe", "naïve café", "ñandú\u00a0x", "日本語\u3000コード", "tab\there"), x%50)
	case 8:
		return pick("[MASK]", "[PAD]", "[UNK]", "[CLS]", "[SEP]", "LAB//[UNK]", "x[SEP]y", "##.65", "%5BMASK]", "LAB//100%25", "LAB//HbA1c%20test", "#1") + pick("", "//1")
	default:
		return fmt.Sprintf("PROCEDURE//ICD//9//%04d", x%3000) + pick("", " ", "  (bilateral)")
	}
}

func realUniverse(n, from int) []string {
	seen := map[string]bool{}
	var out []string
	for k := from; len(out) < n && k < from+100*n; k++ {
		if c := realCode(k); !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

// TestHuggingFaceParityRealWorldCodes builds a tokenizer on real-world-looking codes and
// checks, for lines written in the text form (data.CodeText), that HuggingFace's tokenizers
// library, loading the tokenizer.json we write, gives the ids of EncodeText — and that those
// are the ids the models see, the event path (CodeMap.Encode over the codes as the data spells
// them).
func TestHuggingFaceParityRealWorldCodes(t *testing.T) {
	universe := realUniverse(600, 0)
	for _, c := range SpecialTokens() { // codes spelled like the special tokens are ordinary codes
		if !slices.Contains(universe, c) {
			universe = append(universe, c)
		}
	}
	unseen := realUniverse(200, 50000)
	for _, c := range append(slices.Clone(universe), unseen...) {
		if err := data.CheckCode(c); err != nil {
			t.Fatal(err)
		}
	}
	r := rand.New(rand.NewSource(5))
	tok := hfBuild(t, r, universe, 300, 40, BuildConfig{VocabSize: 5000, MinCount: 1, Subwords: true, MaxPieces: 500, MaxLen: 48})

	// Every code of the universe is one token, its text form.
	for _, c := range universe {
		id, ok := tok.WholeCode(c)
		if !ok || tok.Vocab.Token(id) != data.CodeText(c) {
			t.Fatalf("%q is not one token (%v)", c, tok.CodePieces(c))
		}
		if back, whole := tok.Code(id); !whole || back != c {
			t.Fatalf("Code(%d) = %q, %v; want %q", id, back, whole, c)
		}
	}
	// No code is read as a special token.
	for _, c := range []string{"[MASK]", "[PAD]", "[UNK]", "[CLS]", "[SEP]"} {
		ids, kind := tok.AppendCode(nil, c)
		if len(ids) != 1 || tok.Vocab.IsSpecial(ids[0]) || kind != CodeWhole {
			t.Errorf("code %s encodes to %v (%v)", c, ids, kind)
		}
	}

	// Lines: one subject's codes in text form, as a user writes them for tokenize encode.
	codes := data.NewCodes()
	var lines []string
	var events [][]data.Event
	z := rand.NewZipf(r, 1.1, 2, uint64(len(universe)-1))
	for i := 0; i < 1500; i++ {
		n := 1 + r.Intn(60)
		words := make([]string, n)
		ev := make([]data.Event, n)
		for j := range words {
			c := universe[z.Uint64()]
			if r.Intn(8) == 0 {
				c = unseen[r.Intn(len(unseen))]
			}
			words[j] = data.CodeText(c)
			ev[j] = data.Event{Time: int64(j), Code: codes.ID(c), Value: data.NoValue}
		}
		lines = append(lines, strings.Join(words, []string{" ", "  ", "\t"}[i%3]))
		events = append(events, ev)
	}
	m := tok.NewCodeMap(codes)
	o := Options{MaxLen: tok.MaxLen}
	ours := make([][]int32, len(lines))
	var rates CodeRates
	for i, l := range lines {
		ours[i] = tok.EncodeText(l, o).IDs
		if got := m.Encode(Input{Events: events[i], Birth: data.StaticTime}, o).IDs; !slices.Equal(got, ours[i]) {
			t.Fatalf("line %d: the text path gives %v, the event path %v\n%q", i+1, ours[i], got, l)
		}
		m.Count(&rates, events[i])
	}
	t.Logf("rates over the corpus: %s", rates)
	if rates.Pieced == 0 || rates.Unknown == 0 || rates.Whole == 0 {
		t.Errorf("the corpus does not exercise whole, pieced and [UNK] codes: %s", rates)
	}
	node := hfNode(t) // skips here (outside CI) when node or the npm package is missing
	tokPath, corpusPath := hfWrite(t, t.TempDir(), tok, lines)
	hfCompare(t, tok, lines, ours, hfEncode(t, node, tokPath, corpusPath))
}

// TestStructuralPieces: an unseen code is a known parent and suffix pieces cut at its own
// separators, or [UNK] — never single characters, never across namespaces.
func TestStructuralPieces(t *testing.T) {
	seqs := [][]string{
		append(repeat("ICD10/E11.9", 20), repeat("ICD10/E11.65", 10)...),
		append(repeat("ICD10/I25.10", 10), repeat("LAB//51237//UNK", 10)...),
		append(repeat("LAB//51498// ", 10), repeat("LAB//51498//mg/dL", 10)...),
		append(repeat("SNOMED/44054006", 10), repeat("ICD10/E11", 5)...),
		repeat("READ/C10..", 1), // under --min-count: its namespace stays unseen
	}
	c, _ := counterOf(t, seqs, nil)
	tok, _, err := Build(c, BuildConfig{VocabSize: 100, MinCount: 5, Subwords: true, MaxPieces: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tok.Vocab.Tokens()[tok.WholeEnd:] {
		body := strings.TrimPrefix(p, "##")
		if len([]rune(body)) < 2 {
			t.Errorf("piece %q is a bare character", p)
		}
		if strings.HasPrefix(p, "##") && !isSep([]rune(body)[0]) {
			t.Errorf("suffix piece %q does not start at a separator", p)
		}
	}
	for _, tc := range []struct {
		code string
		want []string
		kind CodeKind
	}{
		{"ICD10/E11.9", []string{"ICD10/E11.9"}, CodeWhole},
		{"ICD10/E11", []string{"ICD10/E11"}, CodeWhole},
		{"ICD10/E11.69", []string{"ICD10/E11", "##.69"}, CodeUnknown}, // ##.69 never seen
		{"ICD10/E11.10", []string{"ICD10/E11", "##.10"}, CodePieced},  // ##.10 from ICD10/I25.10
		{"ICD10/I25.9", []string{"ICD10/I25", "##.9"}, CodePieced},
		{"LAB//51237//mg/dL", []string{"LAB//51237", "##//mg/dL"}, CodePieced},
		{"LAB//51237// ", []string{"LAB//51237", "##//%20"}, CodePieced},
		{"LAB//99999//UNK", []string{UnkToken}, CodeUnknown}, // no parent: the namespace alone pieces nothing
		{"ICD9/250.00", []string{UnkToken}, CodeUnknown},     // unseen namespaces
		{"READ/C10..", []string{UnkToken}, CodeUnknown},
		{"ICD10X/E11.9", []string{UnkToken}, CodeUnknown}, // another namespace that starts like ICD10
		{"ICD10/E11X", []string{UnkToken}, CodeUnknown},   // a parent matches only up to a separator
		{"SNOMED/4405400", []string{UnkToken}, CodeUnknown},
	} {
		ids, kind := tok.AppendCode(nil, tc.code)
		var got []string
		for _, id := range ids {
			got = append(got, tok.Vocab.Token(id))
		}
		want := tc.want
		if tc.kind == CodeUnknown {
			want = []string{UnkToken}
		}
		if !slices.Equal(got, want) || kind != tc.kind {
			t.Errorf("%q: %v (%v), want %v (%v)", tc.code, got, kind, want, tc.kind)
		}
		if kind == CodePieced {
			if p := tok.Parent(ids, kind); p != ids[0] || strings.HasPrefix(tok.Vocab.Token(p), "##") {
				t.Errorf("%q: parent %q", tc.code, tok.Vocab.Token(p))
			}
		}
	}
}
