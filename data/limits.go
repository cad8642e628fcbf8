package data

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The limits every stage applies to MEDS data, in one place: CSV import (ImportCSV), the
// dataset readers (Dataset.ReadShard), training (which reads through them) and serving
// (serve's request decoding) refuse the same codes and times, each naming where it found them.
const (
	// MaxCodeBytes is the longest code, in bytes of UTF-8.
	MaxCodeBytes = 256
	// MinYear and MaxYear bound the (UTC) year of every timed event, birth and death.
	MinYear = 1800
	MaxYear = 2200
	// MaxCSVLineBytes is the longest line CSV import reads (a line longer than that is an
	// error naming it, not a reason to hold it in memory).
	MaxCSVLineBytes = 1 << 20
)

// MinTime and MaxTime are the first and last microseconds of MinYear..MaxYear (UTC).
var (
	MinTime = daysFromCivil(MinYear, 1, 1) * MicrosPerDay
	MaxTime = daysFromCivil(MaxYear+1, 1, 1)*MicrosPerDay - 1
)

// CodeError is a code no stage accepts. Reason says why without repeating the code (servers
// answer with it: a code may identify a patient); Error quotes it, escaped and shortened.
type CodeError struct {
	Code   string
	Reason string
}

func (e *CodeError) Error() string {
	if e.Code == "" {
		return "empty code"
	}
	return "code " + QuoteCode(e.Code) + " " + e.Reason
}

// Unwrap makes errors.Is(err, ErrBadInput) hold.
func (e *CodeError) Unwrap() error { return ErrBadInput }

// CheckCode returns a *CodeError for a code that cannot be represented: empty or only
// whitespace, longer than MaxCodeBytes, not valid UTF-8, or holding NUL, a line feed or a
// carriage return. Any other string is a code: spaces, trailing blanks, repeated slashes,
// punctuation, '%', non-ASCII letters, even the names of special tokens ([MASK]) — every stage
// keeps it one distinct unit (see CodeText for how it is written where text is whitespace
// separated).
func CheckCode(code string) error {
	if len(code) > MaxCodeBytes {
		return &CodeError{code, fmt.Sprintf("is %d bytes, longer than the limit of %d", len(code), MaxCodeBytes)}
	}
	blank := true
	for i := 0; i < len(code); {
		c := code[i]
		if c < utf8.RuneSelf {
			switch c {
			case 0:
				return &CodeError{code, "holds a NUL byte"}
			case '\n', '\r':
				return &CodeError{code, "holds a line break"}
			}
			blank = blank && asciiSpace(c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(code[i:])
		if r == utf8.RuneError && size == 1 {
			return &CodeError{code, fmt.Sprintf("is not valid UTF-8 (byte %d)", i+1)}
		}
		blank = blank && unicode.IsSpace(r)
		i += size
	}
	if blank {
		if code == "" {
			return &CodeError{code, "is empty"}
		}
		return &CodeError{code, "is blank"}
	}
	return nil
}

// CheckTime returns an error for a time (MEDS microseconds) outside MinYear..MaxYear; a static
// row's StaticTime is fine.
func CheckTime(us int64) error {
	if us == StaticTime || us >= MinTime && us <= MaxTime {
		return nil
	}
	return fmt.Errorf("year %d outside %d-%d", yearOf(us), MinYear, MaxYear)
}

func yearOf(us int64) int { return TimeOf(us).Year() }

// QuoteCode quotes a code for a message: Go-escaped (NUL, control characters and invalid
// UTF-8 visible), and cut after 80 bytes with its length given.
func QuoteCode(code string) string {
	const keep = 80
	if len(code) <= keep {
		return strconv.Quote(code)
	}
	cut := keep
	for cut > keep-4 && !utf8.RuneStart(code[cut]) {
		cut--
	}
	return strconv.Quote(code[:cut]) + fmt.Sprintf("... (%d bytes)", len(code))
}

func asciiSpace(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }

// The special tokens of medseq's vocabularies (tokenize.SpecialTokens): a code spelled like
// one is written so that no text form contains them (CodeText).
var reservedTokens = [...]string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}

// CodeText returns the text form of a code: how it is written wherever codes are separated by
// whitespace — vocab.txt, tokenizer.json's vocabulary, `tokenize encode` input and output,
// XGBoost's featmap.txt and the CODE@TIME items of `predict --codes` and ModelInfer's one-line
// input. It is the code itself unless the code holds
//   - whitespace (Unicode's White_Space, what HuggingFace's WhitespaceSplit splits at) or an
//     ASCII control character: each byte becomes %XX (LAB//51498//  -> LAB//51498//%20);
//   - a '%' followed by two hex digits: the '%' becomes %25 (so the form decodes exactly);
//   - the name of a special token ([MASK], [PAD], [CLS], [SEP], [UNK]): its '[' becomes %5B, so
//     the code is never read as the special token;
//   - a leading "##" (WordPiece's continuation prefix): its first '#' becomes %23.
//
// ParseCodeText (Python: urllib.parse.unquote) reverses it; distinct codes have distinct text
// forms, none of them holds whitespace or a special token's name.
func CodeText(code string) string {
	i := 0
	for ; i < len(code); i++ {
		if c := code[i]; c < 0x21 || c >= 0x7f || c == '%' || c == '[' || c == '#' && i == 0 {
			if n := escapeLen(code, i); n > 0 {
				break
			}
			if c >= utf8.RuneSelf {
				_, size := utf8.DecodeRuneInString(code[i:])
				i += size - 1
			}
		}
	}
	if i == len(code) {
		return code
	}
	var b strings.Builder
	b.Grow(len(code) + 8)
	b.WriteString(code[:i])
	for i < len(code) {
		n := escapeLen(code, i)
		if n == 0 {
			size := 1
			if code[i] >= utf8.RuneSelf {
				_, size = utf8.DecodeRuneInString(code[i:])
			}
			b.WriteString(code[i : i+size])
			i += size
			continue
		}
		for _, c := range []byte(code[i : i+n]) {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
		i += n
	}
	return b.String()
}

const hexDigits = "0123456789ABCDEF"

// escapeLen is the number of bytes at code[i] that CodeText escapes (0: none).
func escapeLen(code string, i int) int {
	c := code[i]
	switch {
	case c < 0x21 || c == 0x7f:
		return 1
	case c >= utf8.RuneSelf:
		r, size := utf8.DecodeRuneInString(code[i:])
		if r == utf8.RuneError && size == 1 {
			return 1 // not UTF-8 (CheckCode refuses it); escaped so the form stays printable
		}
		if unicode.IsSpace(r) {
			return size
		}
	case c == '%':
		if i+2 < len(code) && isHex(code[i+1]) && isHex(code[i+2]) {
			return 1
		}
	case c == '[':
		for _, t := range reservedTokens {
			if strings.HasPrefix(code[i:], t) {
				return 1
			}
		}
	case c == '#':
		if i == 0 && strings.HasPrefix(code, "##") {
			return 1
		}
	}
	return 0
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// ParseCodeText returns the code a text form stands for: every %XX (two hex digits, either
// case) is the byte XX, every other character stands for itself — Python's
// urllib.parse.unquote. It accepts any text: a code written plainly (LAB//50912//mg/dL) is its
// own text form unless it holds whitespace or one of the sequences CodeText escapes. The
// result may still be a code CheckCode refuses (%00, an invalid UTF-8 sequence).
func ParseCodeText(s string) string {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}
