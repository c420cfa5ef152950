package rig

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Tally gathers the outcomes of repeated runs of the scenarios (`make hil
// HIL_REPEAT=N`): per scenario how often it passed, failed or was skipped,
// why it failed, and the range of every figure it measured.
type Tally struct {
	Runs  int // runs added so far
	order []string
	by    map[string]*ScenarioTally
}

// ScenarioTally is one scenario's share of a Tally.
type ScenarioTally struct {
	Name             string
	Pass, Fail, Skip int
	Failures         []string // "run N: why", in run order
	figures          []*figureRange
	byShape          map[string]*figureRange
}

// figureRange is one figure's shape (its text with the numbers taken out)
// and, number by number, the smallest and largest value seen.
type figureRange struct {
	shape    string   // text with each number replaced by \x00
	lo, hi   []number // per number in the text
	runs     int      // runs that reported it
	lastSeen int      // the run that reported it last (counted once per run)
}

type number struct {
	text string
	v    float64
}

// Add records one scenario's outcome in run (numbered from 1): status is
// PASS, FAIL or SKIPPED; why says why it failed or was skipped.
func (t *Tally) Add(run int, name, status string, figures []string, why string) {
	if t.by == nil {
		t.by = map[string]*ScenarioTally{}
	}
	t.Runs = max(t.Runs, run)
	s := t.by[name]
	if s == nil {
		s = &ScenarioTally{Name: name, byShape: map[string]*figureRange{}}
		t.by[name] = s
		t.order = append(t.order, name)
	}
	switch status {
	case "PASS":
		s.Pass++
	case "FAIL":
		s.Fail++
		first, _, _ := strings.Cut(why, "\n")
		s.Failures = append(s.Failures, fmt.Sprintf("run %d: %s", run, first))
	default:
		s.Skip++
	}
	for _, f := range figures {
		shape, nums := splitNumbers(f)
		r := s.byShape[shape]
		if r == nil {
			r = &figureRange{shape: shape, lo: nums, hi: append([]number(nil), nums...)}
			s.byShape[shape] = r
			s.figures = append(s.figures, r)
		}
		for i, n := range nums {
			if n.v < r.lo[i].v {
				r.lo[i] = n
			}
			if n.v > r.hi[i].v {
				r.hi[i] = n
			}
		}
		if r.lastSeen != run {
			r.lastSeen = run
			r.runs++
		}
	}
}

// Scenarios returns the scenarios in the order they were first added.
func (t *Tally) Scenarios() []*ScenarioTally {
	out := make([]*ScenarioTally, len(t.order))
	for i, n := range t.order {
		out[i] = t.by[n]
	}
	return out
}

// Failed reports whether any scenario failed in any run.
func (t *Tally) Failed() bool {
	for _, s := range t.by {
		if s.Fail > 0 {
			return true
		}
	}
	return false
}

// Figures returns the scenario's figures with every number that varied
// between runs shown as its range, "[lo..hi]", in the order they were first
// reported. A figure not reported in every run that ran (a warning, or one
// measured past the point where a run failed) says in how many it was.
func (s *ScenarioTally) Figures() []string {
	ran := s.Pass + s.Fail + s.Skip
	var out []string
	for _, r := range s.figures {
		var b strings.Builder
		i := 0
		for _, part := range strings.SplitAfter(r.shape, "\x00") {
			text, hole := strings.CutSuffix(part, "\x00")
			b.WriteString(text)
			if !hole {
				continue
			}
			if r.hi[i].v != r.lo[i].v {
				fmt.Fprintf(&b, "[%s..%s]", r.lo[i].text, r.hi[i].text)
			} else {
				b.WriteString(r.lo[i].text)
			}
			i++
		}
		if r.runs < ran {
			fmt.Fprintf(&b, " (in %d of %d runs)", r.runs, ran)
		}
		out = append(out, b.String())
	}
	return out
}

// String is the tally of the scenario: passes, fails and skips.
func (s *ScenarioTally) String() string {
	return fmt.Sprintf("%-19s %2d pass %2d fail %2d skipped", s.Name, s.Pass, s.Fail, s.Skip)
}

// splitNumbers takes the numbers out of a figure's text: decimal numbers
// (an optional minus sign, digits, an optional fraction) that do not
// continue a word, so "p99", "arm64", "GPIO17", "fb0" or "run-1" stay
// text. It returns the text with each number replaced by \x00, and the
// numbers.
func splitNumbers(s string) (string, []number) {
	var b strings.Builder
	var nums []number
	digit := func(i int) bool { return i < len(s) && s[i] >= '0' && s[i] <= '9' }
	for i := 0; i < len(s); {
		start := i
		if s[i] == '-' && digit(i+1) {
			i++
		}
		if digit(i) && !joined(s[:start]) {
			for digit(i) {
				i++
			}
			if i+1 < len(s) && s[i] == '.' && digit(i+1) {
				i++
				for digit(i) {
					i++
				}
			}
			if v, err := strconv.ParseFloat(s[start:i], 64); err == nil {
				nums = append(nums, number{text: s[start:i], v: v})
				b.WriteByte(0)
				continue
			}
		}
		// Not a number: copy the whole word, so digits inside it stay.
		r, n := utf8.DecodeRuneInString(s[start:])
		i = start + n
		if word(r) {
			for i < len(s) {
				r, n := utf8.DecodeRuneInString(s[i:])
				if !word(r) {
					break
				}
				i += n
			}
		}
		b.WriteString(s[start:i])
	}
	return b.String(), nums
}

// joined reports whether what follows text continues its last word: a
// word character, or a hyphen after one ("run-1").
func joined(text string) bool {
	r, n := utf8.DecodeLastRuneInString(text)
	if r == '-' {
		r, _ = utf8.DecodeLastRuneInString(text[:len(text)-n])
	}
	return word(r)
}

// word reports whether r continues a word.
func word(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }
