package synth

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"

	"github.com/medseq/medseq/data"
)

// vocabSeed fixes the generated part of the code system, so every dataset (whatever its
// seed) shares one vocabulary.
const vocabSeed = 0x5EED_C0DE

// lab is a measurement code with the distribution of its values.
type lab struct {
	id        int32
	mean, sd  float64
	lo, hi    float64
	precision float64 // values are rounded to a multiple of this
}

// sampler draws codes with fixed (Zipf-like) weights.
type sampler struct {
	ids []int32
	cum []float64
}

func (s *sampler) add(id int32, w float64) {
	t := w
	if n := len(s.cum); n > 0 {
		t += s.cum[n-1]
	}
	s.ids = append(s.ids, id)
	s.cum = append(s.cum, t)
}

func (s *sampler) sample(r *rand.Rand) int32 {
	u := r.Float64() * s.cum[len(s.cum)-1]
	lo, hi := 0, len(s.cum)-1
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.cum[m] <= u {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return s.ids[lo]
}

// cluster is a group of clinically related codes that a visit draws from.
type cluster struct {
	name      string
	weight    [3]float64 // share of general visits for children (<16), adults, the elderly (65+)
	femaleMul float64
	maleMul   float64
	cond      sampler // diagnoses, symptoms, procedures
	drugs     sampler
	labs      []lab
	drugProb  float64
	labProb   float64
}

// clusterDef describes a cluster: real named codes ("SYSTEM/code|description") come first
// (most frequent), then generated codes of the same flavour.
type clusterDef struct {
	name               string
	weight             [3]float64
	femaleMul, maleMul float64
	root               string // parent of the generated SNOMED codes
	snomed, icd, drugs []string
	labs               []labDef
	icdLetters         string
	atcGroups          []string
	nSnomed, nICD      int
	nDrugs, nLabs      int
	qual, site, head   []string
	drugProb, labProb  float64
}

type labDef struct {
	code                string // "LOINC/xxxx-x|description"
	mean, sd, lo, hi, p float64
}

var clusterDefs = []clusterDef{
	{
		name: "respiratory", weight: [3]float64{3, 2.2, 2}, root: "SNOMED/50043002|Disorder of respiratory system",
		snomed: []string{"SNOMED/54150009|Upper respiratory infection", "SNOMED/49727002|Cough",
			"SNOMED/10509002|Acute bronchitis", "SNOMED/43878008|Streptococcal sore throat", "SNOMED/444814009|Viral sinusitis",
			"SNOMED/195967001|Asthma", "SNOMED/13645005|Chronic obstructive lung disease", "SNOMED/267036007|Dyspnea",
			"SNOMED/233604007|Pneumonia"},
		icd: []string{"ICD10/J06.9|Acute upper respiratory infection, unspecified",
			"ICD10/J20.9|Acute bronchitis, unspecified", "ICD10/J45.9|Asthma, unspecified",
			"ICD10/J44.9|Chronic obstructive pulmonary disease, unspecified", "ICD10/J02.9|Acute pharyngitis, unspecified",
			"ICD10/J01.9|Acute sinusitis, unspecified", "ICD10/J18.9|Pneumonia, unspecified"},
		drugs: []string{"ATC/J01CA04|amoxicillin", "ATC/R03AC02|salbutamol", "ATC/J01FA10|azithromycin",
			"ATC/R03BA02|budesonide", "ATC/J01AA02|doxycycline", "ATC/R06AE07|cetirizine", "ATC/H02AB06|prednisolone"},
		labs: []labDef{{"LOINC/59408-5|Oxygen saturation in Arterial blood by Pulse oximetry", 96, 2, 80, 100, 1},
			{"LOINC/19935-6|Peak expiratory flow", 420, 90, 100, 750, 10},
			{"LOINC/8310-5|Body temperature", 37.2, 0.7, 35, 41, 0.1}},
		icdLetters: "J", atcGroups: []string{"J01", "R03", "R05", "R06"}, nSnomed: 200, nICD: 40, nDrugs: 14, nLabs: 4,
		qual: []string{"Acute", "Chronic", "Recurrent", "Viral", "Bacterial", "Allergic", "Mild", "Severe"},
		site: []string{"upper respiratory tract", "bronchial", "laryngeal", "nasal", "pharyngeal", "pleural", "sinus",
			"tracheal", "lower respiratory tract"},
		head: []string{"infection", "inflammation", "disorder", "symptom", "obstruction", "finding"}, drugProb: 0.55,
		labProb: 0.12,
	},
	{
		name: "ent_eye", weight: [3]float64{1.5, 1, 1.2},
		snomed: []string{"SNOMED/65363002|Otitis media", "SNOMED/9826008|Conjunctivitis", "SNOMED/193570009|Cataract",
			"SNOMED/23986001|Glaucoma"},
		icd: []string{"ICD10/H66.9|Otitis media, unspecified", "ICD10/H10.9|Conjunctivitis, unspecified",
			"ICD10/H61.2|Impacted cerumen", "ICD10/H26.9|Cataract, unspecified"},
		drugs:      []string{"ATC/S01AA01|chloramphenicol", "ATC/S02AA15|ciprofloxacin (ear)", "ATC/S01ED01|timolol"},
		icdLetters: "H", atcGroups: []string{"S01", "S02", "S03"}, nSnomed: 160, nICD: 40, nDrugs: 8, nLabs: 1,
		qual: []string{"Acute", "Chronic", "Bilateral", "Left", "Right", "Recurrent", "Senile"},
		site: []string{"middle ear", "external ear", "conjunctival", "corneal", "lens", "retinal", "eyelid",
			"tympanic membrane"},
		head: []string{"infection", "inflammation", "disorder", "degeneration", "finding", "discharge"}, drugProb: 0.45,
		labProb: 0.03,
	},
	{
		name: "musculoskeletal", weight: [3]float64{0.4, 2, 2.5}, root: "SNOMED/928000|Disorder of musculoskeletal system",
		snomed: []string{"SNOMED/279039007|Low back pain", "SNOMED/57676002|Joint pain", "SNOMED/396275006|Osteoarthritis",
			"SNOMED/3723001|Arthritis", "SNOMED/69896004|Rheumatoid arthritis", "SNOMED/90560007|Gout",
			"SNOMED/64859006|Osteoporosis"},
		icd: []string{"ICD10/M54.5|Low back pain", "ICD10/M17.9|Gonarthrosis, unspecified", "ICD10/M25.5|Pain in joint",
			"ICD10/M79.6|Pain in limb", "ICD10/M10.9|Gout, unspecified", "ICD10/M81.0|Postmenopausal osteoporosis"},
		drugs: []string{"ATC/M01AE01|ibuprofen", "ATC/N02BE01|paracetamol", "ATC/M01AE02|naproxen",
			"ATC/N02AA59|codeine, combinations", "ATC/N02AX02|tramadol", "ATC/M04AA01|allopurinol",
			"ATC/M05BA04|alendronic acid"},
		labs: []labDef{{"LOINC/1988-5|C reactive protein [Mass/volume] in Serum or Plasma", 6, 8, 0.5, 200, 1},
			{"LOINC/4537-7|Erythrocyte sedimentation rate by Westergren method", 15, 10, 1, 120, 1},
			{"LOINC/3084-1|Urate [Moles/volume] in Serum or Plasma", 330, 80, 120, 700, 1}},
		icdLetters: "M", atcGroups: []string{"M01", "M02", "M03", "M05", "N02"}, nSnomed: 220, nICD: 50, nDrugs: 14, nLabs: 3,
		qual: []string{"Acute", "Chronic", "Traumatic", "Degenerative", "Left", "Right", "Bilateral", "Recurrent"},
		site: []string{"lumbar", "cervical", "shoulder", "knee", "hip", "ankle", "wrist", "thoracic", "elbow", "hand"},
		head: []string{"pain", "sprain", "strain", "arthropathy", "tendinopathy", "stiffness", "bursitis"}, drugProb: 0.5,
		labProb: 0.08,
	},
	{
		name: "mental_health", weight: [3]float64{0.2, 1.5, 0.8}, femaleMul: 1.4, root: "SNOMED/74732009|Mental disorder",
		snomed: []string{"SNOMED/35489007|Depressive disorder", "SNOMED/197480006|Anxiety disorder",
			"SNOMED/193462001|Insomnia", "SNOMED/73595000|Stress", "SNOMED/58214004|Schizophrenia",
			"SNOMED/13746004|Bipolar disorder"},
		icd: []string{"ICD10/F32.9|Depressive episode, unspecified", "ICD10/F41.1|Generalized anxiety disorder",
			"ICD10/F41.2|Mixed anxiety and depressive disorder", "ICD10/G47.0|Disorders of initiating and maintaining sleep",
			"ICD10/F43.2|Adjustment disorders", "ICD10/F20.9|Schizophrenia, unspecified"},
		drugs: []string{"ATC/N06AB06|sertraline", "ATC/N06AB04|citalopram", "ATC/N06AX11|mirtazapine",
			"ATC/N06AB10|escitalopram", "ATC/N05BA01|diazepam", "ATC/N06AX16|venlafaxine", "ATC/N05AH04|quetiapine",
			"ATC/N05AH03|olanzapine"},
		labs: []labDef{{"LOINC/44261-6|Patient Health Questionnaire 9 item (PHQ-9) total score", 12, 6, 0, 27, 1},
			{"LOINC/70274-6|Generalized anxiety disorder 7 item (GAD-7) total score", 10, 5, 0, 21, 1}},
		icdLetters: "F", atcGroups: []string{"N05", "N06"}, nSnomed: 180, nICD: 40, nDrugs: 12, nLabs: 1,
		qual: []string{"Mild", "Moderate", "Severe", "Recurrent", "Reactive", "Chronic", "Single episode"},
		site: []string{"depressive", "anxiety", "panic", "obsessive-compulsive", "stress-related", "sleep", "eating", "mood"},
		head: []string{"disorder", "episode", "symptoms", "reaction", "state", "problem"}, drugProb: 0.6, labProb: 0.15,
	},
	{
		name: "cardiovascular", weight: [3]float64{0.02, 0.5, 2.5}, maleMul: 1.2,
		root: "SNOMED/49601007|Disorder of cardiovascular system",
		snomed: []string{"SNOMED/49436004|Atrial fibrillation", "SNOMED/53741008|Coronary arteriosclerosis",
			"SNOMED/84114007|Heart failure", "SNOMED/22298006|Myocardial infarction",
			"SNOMED/230690007|Cerebrovascular accident", "SNOMED/194828000|Angina", "SNOMED/29857009|Chest pain",
			"SNOMED/55822004|Hyperlipidemia"},
		icd: []string{"ICD10/I48.9|Atrial fibrillation and atrial flutter, unspecified",
			"ICD10/I25.1|Atherosclerotic heart disease", "ICD10/I50.9|Heart failure, unspecified",
			"ICD10/I21.9|Acute myocardial infarction, unspecified", "ICD10/I63.9|Cerebral infarction, unspecified",
			"ICD10/I20.9|Angina pectoris, unspecified", "ICD10/E78.5|Hyperlipidaemia, unspecified",
			"ICD10/R07.4|Chest pain, unspecified"},
		drugs: []string{"ATC/B01AC06|acetylsalicylic acid", "ATC/C07AB07|bisoprolol", "ATC/B01AF01|rivaroxaban",
			"ATC/C03CA01|furosemide", "ATC/C01DA02|glyceryl trinitrate", "ATC/B01AF02|apixaban", "ATC/C01AA05|digoxin"},
		labs: []labDef{{"LOINC/8867-4|Heart rate", 74, 12, 40, 160, 1},
			{"LOINC/30934-4|Natriuretic peptide B [Mass/volume] in Blood", 80, 120, 5, 3000, 1},
			{"LOINC/2093-3|Cholesterol [Moles/volume] in Serum or Plasma", 5.2, 1.0, 2.5, 10, 0.1}},
		icdLetters: "I", atcGroups: []string{"C01", "C03", "C07", "B01"}, nSnomed: 200, nICD: 45, nDrugs: 12, nLabs: 3,
		qual: []string{"Acute", "Chronic", "Paroxysmal", "Persistent", "Stable", "Unstable", "Congestive", "Ischaemic"},
		site: []string{"cardiac", "coronary", "valvular", "aortic", "venous", "arterial", "myocardial",
			"peripheral vascular"},
		head: []string{"disease", "disorder", "insufficiency", "arrhythmia", "murmur", "finding"}, drugProb: 0.5,
		labProb: 0.15,
	},
	{
		name: "dermatology", weight: [3]float64{1, 1, 0.8}, root: "SNOMED/95320005|Disorder of skin",
		snomed: []string{"SNOMED/43116000|Eczema", "SNOMED/9014002|Psoriasis", "SNOMED/11381005|Acne",
			"SNOMED/271807003|Eruption of skin", "SNOMED/128045006|Cellulitis", "SNOMED/402387002|Allergic angioedema"},
		icd: []string{"ICD10/L20.9|Atopic dermatitis, unspecified", "ICD10/L40.0|Psoriasis vulgaris",
			"ICD10/L70.0|Acne vulgaris", "ICD10/L03.9|Cellulitis, unspecified", "ICD10/L30.9|Dermatitis, unspecified",
			"ICD10/B35.1|Tinea unguium"},
		drugs: []string{"ATC/D07AA02|hydrocortisone", "ATC/D07AC01|betamethasone", "ATC/J01CF05|flucloxacillin",
			"ATC/D10AF01|clindamycin", "ATC/D01AC02|miconazole"},
		icdLetters: "L", atcGroups: []string{"D01", "D02", "D06", "D07", "D10"}, nSnomed: 200, nICD: 45, nDrugs: 14,
		qual: []string{"Acute", "Chronic", "Infected", "Localised", "Generalised", "Recurrent", "Seborrhoeic", "Contact"},
		site: []string{"facial", "scalp", "hand", "foot", "truncal", "nail", "flexural", "periorbital"},
		head: []string{"dermatitis", "rash", "lesion", "ulcer", "cyst", "naevus", "pruritus", "wart"}, drugProb: 0.6,
	},
	{
		name: "gastrointestinal", weight: [3]float64{0.8, 1, 1.2}, root: "SNOMED/53619000|Disorder of digestive system",
		snomed: []string{"SNOMED/235595009|Gastroesophageal reflux disease", "SNOMED/21522001|Abdominal pain",
			"SNOMED/62315008|Diarrhea", "SNOMED/422587007|Nausea", "SNOMED/14760008|Constipation",
			"SNOMED/10743008|Irritable bowel syndrome"},
		icd: []string{"ICD10/K21.9|Gastro-oesophageal reflux disease without oesophagitis",
			"ICD10/R10.4|Other and unspecified abdominal pain", "ICD10/K59.0|Constipation",
			"ICD10/K58.9|Irritable bowel syndrome without diarrhoea",
			"ICD10/A09|Gastroenteritis and colitis of unspecified origin"},
		drugs: []string{"ATC/A02BC01|omeprazole", "ATC/A02BC03|lansoprazole", "ATC/A06AD11|lactulose",
			"ATC/A03FA01|metoclopramide", "ATC/A02BC05|esomeprazole", "ATC/A07DA03|loperamide"},
		labs: []labDef{
			{"LOINC/1742-6|Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", 25, 12, 5, 300, 1},
			{"LOINC/1920-8|Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", 24, 10, 5, 300, 1},
			{"LOINC/1975-2|Bilirubin.total [Mass/volume] in Serum or Plasma", 10, 5, 2, 80, 1}},
		icdLetters: "K", atcGroups: []string{"A02", "A03", "A06", "A07"}, nSnomed: 200, nICD: 45, nDrugs: 12, nLabs: 3,
		qual: []string{"Acute", "Chronic", "Functional", "Recurrent", "Infective", "Inflammatory"},
		site: []string{"oesophageal", "gastric", "duodenal", "colonic", "rectal", "anal", "biliary", "hepatic"},
		head: []string{"pain", "disorder", "inflammation", "bleeding", "ulcer", "polyp", "dysfunction"}, drugProb: 0.5,
		labProb: 0.1,
	},
	{
		name: "genitourinary", weight: [3]float64{0.3, 0.8, 1}, femaleMul: 1.6,
		root: "SNOMED/42030000|Disorder of the genitourinary system",
		snomed: []string{"SNOMED/68566005|Urinary tract infectious disease", "SNOMED/266569009|Benign prostatic hyperplasia",
			"SNOMED/165232002|Urinary incontinence", "SNOMED/709044004|Chronic kidney disease"},
		icd: []string{"ICD10/N39.0|Urinary tract infection, site not specified", "ICD10/N40|Hyperplasia of prostate",
			"ICD10/N18.3|Chronic kidney disease, stage 3", "ICD10/N95.1|Menopausal and female climacteric states"},
		drugs: []string{"ATC/J01EA01|trimethoprim", "ATC/J01XE01|nitrofurantoin", "ATC/G04CA02|tamsulosin",
			"ATC/G03CA03|estradiol"},
		labs: []labDef{{"LOINC/2160-0|Creatinine [Moles/volume] in Serum or Plasma", 80, 20, 30, 600, 1},
			{"LOINC/62238-1|Glomerular filtration rate/1.73 sq M.predicted (CKD-EPI)", 85, 20, 5, 130, 1}},
		icdLetters: "N", atcGroups: []string{"G04", "J01", "G03"}, nSnomed: 160, nICD: 40, nDrugs: 10, nLabs: 2,
		qual: []string{"Acute", "Chronic", "Recurrent", "Complicated", "Uncomplicated", "Benign"},
		site: []string{"bladder", "renal", "urethral", "prostatic", "ovarian", "uterine", "cervical", "vaginal",
			"testicular"},
		head: []string{"infection", "disorder", "cyst", "pain", "discharge", "bleeding", "dysfunction"}, drugProb: 0.55,
		labProb: 0.12,
	},
	{
		name: "neurology", weight: [3]float64{0.3, 0.6, 0.9}, root: "SNOMED/118940003|Disorder of nervous system",
		snomed: []string{"SNOMED/25064002|Headache", "SNOMED/37796009|Migraine", "SNOMED/84757009|Epilepsy",
			"SNOMED/404640003|Dizziness", "SNOMED/49049000|Parkinson's disease"},
		icd: []string{"ICD10/G43.9|Migraine, unspecified", "ICD10/R51|Headache", "ICD10/G40.9|Epilepsy, unspecified",
			"ICD10/R42|Dizziness and giddiness", "ICD10/G56.0|Carpal tunnel syndrome"},
		drugs: []string{"ATC/N02CC01|sumatriptan", "ATC/N03AX16|pregabalin", "ATC/N03AG01|valproic acid",
			"ATC/N03AX09|lamotrigine", "ATC/N06AA09|amitriptyline"},
		icdLetters: "G", atcGroups: []string{"N02", "N03", "N04"}, nSnomed: 150, nICD: 35, nDrugs: 10,
		qual: []string{"Acute", "Chronic", "Episodic", "Progressive", "Idiopathic", "Post-traumatic"},
		site: []string{"cranial nerve", "peripheral nerve", "cerebral", "spinal", "vestibular", "facial nerve"},
		head: []string{"disorder", "neuropathy", "pain", "palsy", "seizure", "tremor"}, drugProb: 0.45,
	},
	{
		name: "endocrine", weight: [3]float64{0.05, 0.4, 0.6}, femaleMul: 1.3,
		root: "SNOMED/362969004|Disorder of endocrine system",
		snomed: []string{"SNOMED/40930008|Hypothyroidism", "SNOMED/34486009|Hyperthyroidism", "SNOMED/271737000|Anemia",
			"SNOMED/267384006|Vitamin D deficiency"},
		icd: []string{"ICD10/E03.9|Hypothyroidism, unspecified", "ICD10/E05.9|Thyrotoxicosis, unspecified",
			"ICD10/E55.9|Vitamin D deficiency, unspecified", "ICD10/D64.9|Anaemia, unspecified"},
		drugs: []string{"ATC/H03AA01|levothyroxine sodium", "ATC/A11CC05|colecalciferol", "ATC/B03AA07|ferrous sulfate",
			"ATC/H03BB01|carbimazole"},
		labs: []labDef{{"LOINC/3016-3|Thyrotropin [Units/volume] in Serum or Plasma", 2, 1.5, 0.01, 60, 0.01},
			{"LOINC/3024-7|Thyroxine (T4) free [Mass/volume] in Serum or Plasma", 15, 3, 4, 50, 0.1},
			{"LOINC/718-7|Hemoglobin [Mass/volume] in Blood", 138, 14, 60, 190, 1},
			{"LOINC/2276-4|Ferritin [Mass/volume] in Serum or Plasma", 90, 70, 3, 900, 1}},
		icdLetters: "ED", atcGroups: []string{"H03", "A11", "B03", "H01"}, nSnomed: 150, nICD: 40, nDrugs: 10, nLabs: 4,
		qual: []string{"Primary", "Secondary", "Subclinical", "Congenital", "Acquired", "Iatrogenic"},
		site: []string{"thyroid", "adrenal", "pituitary", "parathyroid", "iron", "vitamin B12", "folate"},
		head: []string{"deficiency", "disorder", "excess", "nodule", "dysfunction", "finding"}, drugProb: 0.5, labProb: 0.4,
	},
	{
		name: "infection", weight: [3]float64{0.8, 0.5, 0.4}, root: "SNOMED/40733004|Infectious disease",
		snomed: []string{"SNOMED/38907003|Varicella", "SNOMED/4740000|Herpes zoster",
			"SNOMED/840539006|Disease caused by severe acute respiratory syndrome coronavirus 2", "SNOMED/6142004|Influenza"},
		icd: []string{"ICD10/B01.9|Varicella without complication", "ICD10/B02.9|Zoster without complication",
			"ICD10/U07.1|COVID-19", "ICD10/J11.1|Influenza with other respiratory manifestations, virus not identified",
			"ICD10/B34.9|Viral infection, unspecified"},
		drugs: []string{"ATC/J05AB01|aciclovir", "ATC/J01CR02|amoxicillin and beta-lactamase inhibitor",
			"ATC/J01MA02|ciprofloxacin", "ATC/P02CA01|mebendazole"},
		icdLetters: "AB", atcGroups: []string{"J01", "J02", "J05", "P01", "P02"}, nSnomed: 150, nICD: 45, nDrugs: 12,
		nLabs: 1, qual: []string{"Acute", "Disseminated", "Localised", "Viral", "Bacterial", "Fungal", "Parasitic"},
		site: []string{"systemic", "skin", "enteric", "oral", "genital", "wound", "lymph node"},
		head: []string{"infection", "infestation", "carriage", "exposure", "disease"}, drugProb: 0.5, labProb: 0.03,
		labs: []labDef{{"LOINC/6690-2|Leukocytes [#/volume] in Blood by Automated count", 7.5, 2.5, 1, 30, 0.1}},
	},
	{
		name: "symptoms", weight: [3]float64{0.8, 1.2, 1.5},
		snomed: []string{"SNOMED/22253000|Pain", "SNOMED/386661006|Fever", "SNOMED/84229001|Fatigue",
			"SNOMED/267102003|Sore throat symptom", "SNOMED/271795006|Malaise", "SNOMED/248062006|Self-limiting condition"},
		icd: []string{"ICD10/R50.9|Fever, unspecified", "ICD10/R53|Malaise and fatigue", "ICD10/R11|Nausea and vomiting",
			"ICD10/R21|Rash and other nonspecific skin eruption", "ICD10/R69|Unknown and unspecified causes of morbidity"},
		icdLetters: "R", nSnomed: 160, nICD: 45, nLabs: 2,
		qual: []string{"Intermittent", "Persistent", "Sudden onset", "Gradual onset", "Nocturnal", "Exertional"},
		site: []string{"generalised", "abdominal", "chest", "limb", "head", "pelvic", "back"},
		head: []string{"pain", "swelling", "discomfort", "weakness", "sensation", "symptom", "finding"}, labProb: 0.05,
	},
	{
		name: "paediatrics", weight: [3]float64{2.5, 0, 0},
		snomed: []string{"SNOMED/36989005|Mumps", "SNOMED/14189004|Measles", "SNOMED/409709004|Infant feeding problem"},
		icd: []string{"ICD10/Z00.1|Routine child health examination", "ICD10/P59.9|Neonatal jaundice, unspecified",
			"ICD10/R62.8|Other lack of expected normal physiological development", "ICD10/L22|Diaper [napkin] dermatitis"},
		drugs: []string{"ATC/N02BE01|paracetamol", "ATC/J01CA04|amoxicillin", "ATC/D02AB|zinc products"},
		labs: []labDef{{"LOINC/29463-7|Body weight", 20, 12, 2, 90, 0.1}, {"LOINC/8302-2|Body height", 110, 35, 45, 190, 0.5},
			{"LOINC/9843-4|Head Occipital-frontal circumference", 45, 4, 30, 58, 0.1}},
		icdLetters: "PQ", atcGroups: []string{"J07", "N02", "R05"}, nSnomed: 160, nICD: 40, nDrugs: 6, nLabs: 2,
		qual: []string{"Neonatal", "Infantile", "Childhood", "Developmental", "Congenital", "Feeding"},
		site: []string{"growth", "speech", "motor", "hip", "umbilical", "testicular", "skin", "sleep"},
		head: []string{"delay", "problem", "disorder", "review", "anomaly", "check"}, drugProb: 0.35, labProb: 0.35,
	},
	{
		name: "frailty", weight: [3]float64{0, 0.05, 1.5},
		snomed: []string{"SNOMED/52448006|Dementia", "SNOMED/26929004|Alzheimer's disease",
			"SNOMED/217082002|Accidental fall", "SNOMED/248279007|Frailty"},
		icd: []string{"ICD10/F03|Unspecified dementia", "ICD10/W19|Unspecified fall",
			"ICD10/R26.8|Other and unspecified abnormalities of gait and mobility", "ICD10/R54|Senility"},
		drugs: []string{"ATC/N06DA02|donepezil", "ATC/N06DX01|memantine", "ATC/A06AB06|senna glycosides"}, icdLetters: "RWZ",
		atcGroups: []string{"N06", "A06", "A12"}, nSnomed: 150, nICD: 40, nDrugs: 6,
		qual: []string{"Age-related", "Progressive", "Mild", "Moderate", "Severe", "Recurrent"},
		site: []string{"cognitive", "mobility", "balance", "continence", "nutritional", "memory", "functional"},
		head: []string{"impairment", "decline", "problem", "assessment", "risk", "care need"}, drugProb: 0.35,
	},
	{
		name: "preventive", weight: [3]float64{0.5, 1, 1},
		snomed: []string{"SNOMED/77176002|Smoker", "SNOMED/8517006|Ex-smoker", "SNOMED/266919005|Never smoked tobacco",
			"SNOMED/228273003|Finding relating to alcohol drinking behavior"},
		icd: []string{"ICD10/Z00.0|General medical examination",
			"ICD10/Z23|Need for immunization against single bacterial diseases",
			"ICD10/Z71.3|Dietary counselling and surveillance"},
		drugs: []string{"ATC/J07BB02|influenza, inactivated, split virus or surface antigen",
			"ATC/J07AL02|pneumococcus, purified polysaccharides antigen conjugated"},
		labs: []labDef{{"LOINC/2085-9|Cholesterol in HDL [Moles/volume] in Serum or Plasma", 1.4, 0.35, 0.5, 3.5, 0.1},
			{"LOINC/2571-8|Triglyceride [Moles/volume] in Serum or Plasma", 1.5, 0.8, 0.3, 10, 0.1}},
		icdLetters: "Z", atcGroups: []string{"J07"}, nSnomed: 180, nICD: 40, nDrugs: 6, nLabs: 3,
		qual: []string{"Annual", "Routine", "Opportunistic", "Targeted", "Follow-up", "Telephone"},
		site: []string{"health", "medication", "lifestyle", "smoking", "alcohol", "weight", "vaccination", "screening"},
		head: []string{"review", "check", "advice", "assessment", "invitation", "status"}, drugProb: 0.25, labProb: 0.25,
	},
	{
		name: "womens_health", weight: [3]float64{0, 0.9, 0.1}, femaleMul: 1, maleMul: -1,
		snomed: []string{"SNOMED/386761002|Menorrhagia", "SNOMED/161712005|Menopause"},
		icd: []string{"ICD10/Z30.0|General counselling and advice on contraception",
			"ICD10/N92.0|Excessive and frequent menstruation with regular cycle", "ICD10/N94.6|Dysmenorrhoea, unspecified"},
		drugs: []string{"ATC/G03AA07|levonorgestrel and ethinylestradiol", "ATC/G03AC09|desogestrel",
			"ATC/G02BA03|plastic IUD with progestogen"},
		icdLetters: "N", atcGroups: []string{"G02", "G03"}, nSnomed: 120, nICD: 25, nDrugs: 8,
		qual: []string{"Irregular", "Heavy", "Painful", "Post-coital", "Intermenstrual", "Perimenopausal"},
		site: []string{"menstrual", "cervical", "breast", "pelvic", "contraceptive", "vulval"},
		head: []string{"bleeding", "symptom", "review", "problem", "screening", "advice"}, drugProb: 0.5,
	},
	{
		name: "pregnancy", // used by the pregnancy schedule only
		snomed: []string{"SNOMED/77386006|Pregnancy", "SNOMED/169826009|Single live birth",
			"SNOMED/424441002|Prenatal initial visit"},
		icd: []string{"ICD10/Z34.9|Supervision of normal pregnancy, unspecified", "ICD10/O80|Single spontaneous delivery",
			"ICD10/O21.0|Mild hyperemesis gravidarum"},
		drugs: []string{"ATC/B03BB01|folic acid"},
		labs:  []labDef{{"LOINC/11881-0|Uterus Fundal height Tape measure", 28, 6, 12, 42, 1}}, icdLetters: "O", nSnomed: 120,
		nICD: 30, nDrugs: 2, nLabs: 1,
		qual: []string{"Antenatal", "Postnatal", "First trimester", "Second trimester", "Third trimester", "Intrapartum"},
		site: []string{"pregnancy", "fetal", "placental", "obstetric", "maternal", "labour"},
		head: []string{"review", "finding", "complication", "scan", "check", "problem"}, drugProb: 0.2, labProb: 0.3,
	},
}

// vocab is the code system: every code string (interned in this order, so a code's index is
// its id in a fresh data.Codes), its metadata, the clusters and the named special codes.
type vocab struct {
	names    []string
	meta     []data.CodeMeta
	index    map[string]int32
	clusters []cluster
	pregnant int // index of the pregnancy cluster
	sp       special
}

// special holds the codes the model of disease and care refers to by name.
type special struct {
	birth, death, sexF, sexM, registration                   int32
	t2dSN, t2dICD, t2dICD65                                  int32
	t2dComplications                                         []int32 // coded some years after diagnosis
	metformin, insulin                                       int32
	secondLine                                               []int32
	hba1c, bmi, weight, sbp, dbp, chol, ldl, egfr, acr, fpg  int32
	prediabSN, prediabICD, obesitySN, obesityICD             int32
	htnSN, htnICD, gdmSN, gdmICD, pcosSN, pcosICD            int32
	famSN, famICD                                            int32
	hints                                                    []int32
	statins, antihyp                                         []int32
	smoker, exSmoker, never                                  int32
	diabReview, eyeScreen, footCheck, diabEducation, dietAdv int32
	immunisations                                            []int32
	ogtt                                                     int32
}

var (
	vocabOnce sync.Once
	theVocab  *vocab
)

func getVocab() *vocab {
	vocabOnce.Do(func() { theVocab = buildVocab() })
	return theVocab
}

type vocabBuilder struct {
	v    *vocab
	r    *rand.Rand
	used map[string]bool // generated numbers and codes already taken
}

func splitNamed(s string) (code, desc string) {
	code, desc, _ = strings.Cut(s, "|")
	return code, desc
}

// add registers a code (once) and returns its id.
func (b *vocabBuilder) add(code, desc string, parents ...string) int32 {
	if id, ok := b.v.index[code]; ok {
		return id
	}
	id := int32(len(b.v.names))
	b.v.index[code] = id
	b.v.names = append(b.v.names, code)
	b.used[code] = true
	if len(parents) == 0 {
		parents = defaultParents(code)
	}
	b.v.meta = append(b.v.meta, data.CodeMeta{Code: code, Description: desc, ParentCodes: parents})
	return id
}

func (b *vocabBuilder) named(s string) int32 {
	c, d := splitNamed(s)
	return b.add(c, d)
}

// defaultParents: ICD10/E11.9 -> ICD10/E11; ATC/A10BA02 -> ATC/A10BA.
func defaultParents(code string) []string {
	switch {
	case strings.HasPrefix(code, "ICD10/"):
		if i := strings.IndexByte(code, '.'); i > 0 {
			return []string{code[:i]}
		}
	case strings.HasPrefix(code, "ATC/") && len(code) == len("ATC/A10BA02"):
		return []string{code[:len(code)-2]}
	}
	return nil
}

// forbidden reports generated codes that must not exist: the T2D target prefixes and the
// codes of diabetes and its precursors, which only the disease model emits.
func forbidden(code string) bool {
	for _, p := range []string{"ICD10/E10", "ICD10/E11", "ICD10/E12", "ICD10/E13", "ICD10/E14", "ICD10/R73", "ICD10/O24",
		"SNOMED/44054006", "ATC/A10"} {
		if strings.HasPrefix(code, p) {
			return true
		}
	}
	return false
}

// genSNOMED returns a new SNOMED CT concept id: an item identifier, partition "00" and a
// Verhoeff check digit (6 to 18 digits in all).
func (b *vocabBuilder) genSNOMED() string {
	for {
		nd := 3 + b.r.IntN(10) // item identifier digits: total length 6..15
		if b.r.IntN(8) == 0 {
			nd += b.r.IntN(4) // a few long (extension-like) ids
		}
		item := strconv.FormatInt(int64(math.Pow10(nd-1))+b.r.Int64N(int64(9*math.Pow10(nd-1))), 10)
		body := item + "00"
		code := "SNOMED/" + body + string(rune('0'+verhoeffCheck(body)))
		if !b.used[code] && !forbidden(code) {
			return code
		}
	}
}

func (b *vocabBuilder) genICD(letters string) string {
	for {
		l := letters[b.r.IntN(len(letters))]
		code := "ICD10/" + string(l) + strconv.Itoa(b.r.IntN(10)) + strconv.Itoa(b.r.IntN(10))
		if b.r.IntN(3) > 0 {
			code += "." + strconv.Itoa(b.r.IntN(10))
		}
		if !b.used[code] && !forbidden(code) {
			return code
		}
	}
}

func (b *vocabBuilder) genATC(group string) string {
	for {
		code := "ATC/" + group + string(rune('A'+b.r.IntN(8))) + string(rune('A'+b.r.IntN(12))) +
			strconv.Itoa(b.r.IntN(10)) + strconv.Itoa(1+b.r.IntN(9))
		if !b.used[code] && !forbidden(code) {
			return code
		}
	}
}

func (b *vocabBuilder) genLOINC() string {
	for {
		n := strconv.Itoa(10000 + b.r.IntN(90000))
		code := "LOINC/" + n + "-" + string(rune('0'+luhnCheck(n)))
		if !b.used[code] {
			return code
		}
	}
}

func pick(r *rand.Rand, s []string) string { return s[r.IntN(len(s))] }

var drugStems = []string{"ab", "cor", "dex", "fen", "gli", "lor", "mab", "nex", "pra", "quin", "sar", "tol", "vir",
	"zol", "mir", "cet", "dol", "bax"}
var drugEnds = []string{"azole", "icillin", "olol", "pril", "statin", "idine", "oxacin", "amide", "afil", "ine", "umab",
	"asone", "ate", "ium"}
var labWords = []string{"Serum", "Plasma", "Urine", "Blood", "Capillary"}
var labAnalytes = []string{"magnesium", "phosphate", "albumin", "globulin", "amylase", "lipase", "zinc", "copper",
	"lactate", "urea", "sodium", "potassium", "chloride", "bicarbonate", "calcium", "protein", "osmolality",
	"gamma-GT", "CK", "LDH"}

// buildVocab builds the code system. It draws generated codes from a fixed seed: the order
// of the steps (and of the codes within them) is every code's id and must not change.
func buildVocab() *vocab {
	b := &vocabBuilder{v: &vocab{index: map[string]int32{}}, r: rand.New(rand.NewPCG(vocabSeed, 0x9E3779B97F4A7C15)),
		used: map[string]bool{}}
	sp := &b.v.sp
	sp.birth = b.add(data.BirthCode, "Birth")
	sp.death = b.add(data.DeathCode, "Death")
	sp.sexF = b.add(data.SexCodePrefix+data.SexFemale, "Sex: female")
	sp.sexM = b.add(data.SexCodePrefix+data.SexMale, "Sex: male")
	b.addDiabetesCodes()
	b.addRiskFactorCodes()
	b.addCareCodes()
	for ci, d := range clusterDefs {
		if d.name == "pregnancy" {
			b.v.pregnant = ci
		}
		b.v.clusters = append(b.v.clusters, b.cluster(&d))
	}
	b.addICDCategories()
	return b.v
}

// addDiabetesCodes adds diabetes and its precursors: codes emitted only by the disease model.
func (b *vocabBuilder) addDiabetesCodes() {
	sp := &b.v.sp
	b.add("ICD10/E11", "Type 2 diabetes mellitus")
	sp.t2dSN = b.add("SNOMED/44054006", "Diabetes mellitus type 2")
	sp.t2dICD = b.add("ICD10/E11.9", "Type 2 diabetes mellitus without complications")
	sp.t2dICD65 = b.add("ICD10/E11.65", "Type 2 diabetes mellitus with hyperglycemia")
	sp.t2dComplications = []int32{
		b.add("ICD10/E11.2", "Type 2 diabetes mellitus with renal complications"),
		b.add("ICD10/E11.3", "Type 2 diabetes mellitus with ophthalmic complications"),
		b.add("ICD10/E11.4", "Type 2 diabetes mellitus with neurological complications"),
		b.add("SNOMED/4855003", "Diabetic retinopathy"),
		b.add("SNOMED/230572002", "Diabetic neuropathy"),
		b.add("SNOMED/127013003", "Disorder of kidney due to diabetes mellitus"),
	}
	sp.metformin = b.add("ATC/A10BA02", "metformin")
	sp.secondLine = []int32{b.add("ATC/A10BB09", "gliclazide"), b.add("ATC/A10BH01", "sitagliptin"),
		b.add("ATC/A10BK03", "empagliflozin"), b.add("ATC/A10BK01", "dapagliflozin")}
	sp.insulin = b.add("ATC/A10AE04", "insulin glargine")
	sp.hba1c = b.add("LOINC/4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood (mmol/mol)")
	sp.fpg = b.add("LOINC/1558-6", "Fasting glucose [Moles/volume] in Serum or Plasma (mmol/L)")
	sp.ogtt = b.add("LOINC/20436-2", "Glucose [Moles/volume] in Serum or Plasma --2 hours post dose glucose (mmol/L)")
	sp.acr = b.add("LOINC/14959-1", "Microalbumin/Creatinine [Mass Ratio] in Urine (mg/mmol)")
	sp.prediabSN = b.add("SNOMED/714628002", "Prediabetes")
	sp.prediabICD = b.add("ICD10/R73.03", "Prediabetes")
	sp.gdmSN = b.add("SNOMED/11687002", "Gestational diabetes mellitus")
	sp.gdmICD = b.add("ICD10/O24.4", "Diabetes mellitus arising in pregnancy")
	sp.hints = []int32{b.add("SNOMED/17173007", "Excessive thirst"), b.add("SNOMED/28442001", "Polyuria"),
		b.add("SNOMED/84229001", "Fatigue"), b.add("SNOMED/78048006", "Candidiasis"), b.add("ICD10/R35", "Polyuria"),
		b.add("ICD10/R63.1", "Polydipsia"), b.add("ICD10/B37.9", "Candidiasis, unspecified")}
}

// addRiskFactorCodes adds the risk factors and their care.
func (b *vocabBuilder) addRiskFactorCodes() {
	sp := &b.v.sp
	sp.obesitySN = b.add("SNOMED/414916001", "Obesity")
	sp.obesityICD = b.add("ICD10/E66.9", "Obesity, unspecified")
	sp.htnSN = b.add("SNOMED/38341003", "Hypertensive disorder, systemic arterial")
	sp.htnICD = b.add("ICD10/I10", "Essential (primary) hypertension")
	sp.pcosSN = b.add("SNOMED/237055002", "Polycystic ovary syndrome")
	sp.pcosICD = b.add("ICD10/E28.2", "Polycystic ovarian syndrome")
	sp.famSN = b.add("SNOMED/160303001", "Family history: Diabetes mellitus")
	sp.famICD = b.add("ICD10/Z83.3", "Family history of diabetes mellitus")
	sp.statins = []int32{b.add("ATC/C10AA01", "simvastatin"), b.add("ATC/C10AA05", "atorvastatin")}
	sp.antihyp = []int32{b.add("ATC/C09AA05", "ramipril"), b.add("ATC/C08CA01", "amlodipine"),
		b.add("ATC/C09CA01", "losartan"), b.add("ATC/C03AA03", "hydrochlorothiazide")}
	sp.bmi = b.add("LOINC/39156-5", "Body mass index (BMI) [Ratio] (kg/m2)")
	sp.weight = b.add("LOINC/29463-7", "Body weight (kg)")
	sp.sbp = b.add("LOINC/8480-6", "Systolic blood pressure (mm[Hg])")
	sp.dbp = b.add("LOINC/8462-4", "Diastolic blood pressure (mm[Hg])")
	sp.chol = b.add("LOINC/2093-3", "Cholesterol [Moles/volume] in Serum or Plasma (mmol/L)")
	sp.ldl = b.add("LOINC/13457-7", "Cholesterol in LDL [Moles/volume] in Serum or Plasma by calculation (mmol/L)")
	sp.egfr = b.add("LOINC/62238-1", "Glomerular filtration rate/1.73 sq M.predicted (CKD-EPI)")
	sp.smoker = b.add("SNOMED/77176002", "Smoker")
	sp.exSmoker = b.add("SNOMED/8517006", "Ex-smoker")
	sp.never = b.add("SNOMED/266919005", "Never smoked tobacco")
}

// addCareCodes adds care processes with synthetic ids (valid check digits) and plain
// descriptions.
func (b *vocabBuilder) addCareCodes() {
	sp := &b.v.sp
	sp.registration = b.add(b.genSNOMED(), "New patient registration")
	sp.diabReview = b.add(b.genSNOMED(), "Diabetes annual review")
	sp.eyeScreen = b.add(b.genSNOMED(), "Diabetic retinopathy screening")
	sp.footCheck = b.add(b.genSNOMED(), "Diabetic foot examination")
	sp.diabEducation = b.add(b.genSNOMED(), "Structured diabetes education offered")
	sp.dietAdv = b.add(b.genSNOMED(), "Dietary advice given")
	for _, d := range []string{"Diphtheria, tetanus, pertussis, polio, Hib and hepatitis B vaccination",
		"Pneumococcal conjugate vaccination", "Meningococcal B vaccination", "Rotavirus vaccination",
		"Measles, mumps and rubella vaccination", "Preschool booster vaccination", "Human papillomavirus vaccination"} {
		sp.immunisations = append(sp.immunisations, b.add(b.genSNOMED(), d))
	}
}

// cluster adds a cluster's codes: its root concept, its conditions (named codes first, then
// generated ones, Zipf weights by rank), drugs and labs.
func (b *vocabBuilder) cluster(d *clusterDef) cluster {
	c := cluster{name: d.name, weight: d.weight, femaleMul: 1, maleMul: 1, drugProb: d.drugProb, labProb: d.labProb}
	if d.femaleMul > 0 {
		c.femaleMul = d.femaleMul
	}
	if d.maleMul > 0 {
		c.maleMul = d.maleMul
	} else if d.maleMul < 0 {
		c.maleMul = 0
	}
	root := b.clusterRoot(d)
	for rank, id := range b.clusterConditions(d, root) {
		c.cond.add(id, 1/math.Pow(float64(rank)+2, 1.05))
	}
	var drugs []int32
	for _, s := range d.drugs {
		drugs = append(drugs, b.named(s))
	}
	for i := 0; i < d.nDrugs && len(d.atcGroups) > 0; i++ {
		drugs = append(drugs, b.add(b.genATC(pick(b.r, d.atcGroups)), pick(b.r, drugStems)+pick(b.r, drugEnds)))
	}
	for rank, id := range drugs {
		c.drugs.add(id, 1/math.Pow(float64(rank)+1.5, 1.1))
	}
	for _, l := range d.labs {
		c.labs = append(c.labs, lab{id: b.named(l.code), mean: l.mean, sd: l.sd, lo: l.lo, hi: l.hi, precision: l.p})
	}
	for i := 0; i < d.nLabs; i++ {
		m := math.Round(math.Exp(b.r.Float64()*6)) + 1
		c.labs = append(c.labs, lab{id: b.add(b.genLOINC(), pick(b.r, labWords)+" "+pick(b.r, labAnalytes)+" level"),
			mean: m, sd: m * (0.1 + 0.2*b.r.Float64()), lo: 0, hi: m * 5, precision: math.Pow(10, math.Floor(math.Log10(m))-1)})
	}
	return c
}

// clusterRoot adds the cluster's root concept (named, or generated from the cluster's name)
// and returns it as the parent list of its generated SNOMED codes.
func (b *vocabBuilder) clusterRoot(d *clusterDef) []string {
	if d.root != "" {
		rc, _ := splitNamed(d.root)
		b.named(d.root)
		return []string{rc}
	}
	rc := b.genSNOMED()
	b.add(rc, strings.ToUpper(d.name[:1])+strings.ReplaceAll(d.name[1:], "_", " ")+" finding")
	return []string{rc}
}

// clusterConditions adds a cluster's conditions by rank: real SNOMED and ICD codes
// interleaved at the head, then generated codes of both, shuffled a little so that the two
// vocabularies interleave along the tail.
func (b *vocabBuilder) clusterConditions(d *clusterDef, root []string) []int32 {
	var ids []int32
	for i := 0; i < max(len(d.snomed), len(d.icd)); i++ {
		if i < len(d.snomed) {
			ids = append(ids, b.named(d.snomed[i]))
		}
		if i < len(d.icd) {
			ids = append(ids, b.named(d.icd[i]))
		}
	}
	kind := " (disorder)"
	for i := 0; i < d.nSnomed+d.nICD; i++ {
		desc := pick(b.r, d.qual) + " " + pick(b.r, d.site) + " " + pick(b.r, d.head)
		if b.r.IntN(d.nSnomed+d.nICD) < d.nICD {
			ids = append(ids, b.add(b.genICD(d.icdLetters), desc))
		} else {
			ids = append(ids, b.add(b.genSNOMED(), desc+kind, root...))
		}
	}
	head := len(d.snomed) + len(d.icd)
	tail := ids[head:]
	b.r.Shuffle(len(tail), func(i, j int) { tail[i], tail[j] = tail[j], tail[i] })
	return ids
}

// addICDCategories adds ICD-10 category rows for the parents that are not codes themselves.
func (b *vocabBuilder) addICDCategories() {
	for _, m := range append([]data.CodeMeta(nil), b.v.meta...) {
		for _, p := range m.ParentCodes {
			if _, ok := b.v.index[p]; !ok && strings.HasPrefix(p, "ICD10/") {
				b.add(p, "ICD-10 category "+strings.TrimPrefix(p, "ICD10/"))
			}
		}
	}
}

// Verhoeff tables.
var (
	verD = [10][10]uint8{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5}, {2, 3, 4, 0, 1, 7, 8, 9, 5, 6},
		{3, 4, 0, 1, 2, 8, 9, 5, 6, 7}, {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
		{6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3}, {8, 7, 6, 5, 9, 3, 2, 1, 0, 4},
		{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}}
	verP = [8][10]uint8{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4}, {5, 8, 0, 3, 7, 9, 6, 1, 4, 2},
		{8, 9, 1, 6, 0, 4, 3, 5, 2, 7}, {9, 4, 5, 3, 1, 2, 6, 8, 7, 0}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
		{2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8}}
	verInv = [10]uint8{0, 4, 3, 2, 1, 5, 6, 7, 8, 9}
)

// verhoeffCheck is the Verhoeff check digit of a decimal string.
func verhoeffCheck(digits string) int {
	c := uint8(0)
	for i := 0; i < len(digits); i++ {
		c = verD[c][verP[(i+1)%8][digits[len(digits)-1-i]-'0']]
	}
	return int(verInv[c])
}

// verhoeffValid reports whether a decimal string ends in its Verhoeff check digit.
func verhoeffValid(digits string) bool {
	c := uint8(0)
	for i := 0; i < len(digits); i++ {
		d := digits[len(digits)-1-i]
		if d < '0' || d > '9' {
			return false
		}
		c = verD[c][verP[i%8][d-'0']]
	}
	return c == 0
}

// luhnCheck is the LOINC (mod 10) check digit of a decimal string.
func luhnCheck(digits string) int {
	sum := 0
	for i := 0; i < len(digits); i++ {
		d := int(digits[len(digits)-1-i] - '0')
		if i%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return (10 - sum%10) % 10
}
