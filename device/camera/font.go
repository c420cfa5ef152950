package camera

import "github.com/callbox/callbox/internal/bitfont"

// The synthetic picture's font (internal/bitfont): 5x7 cells.
const (
	glyphW = bitfont.W
	glyphH = bitfont.H
)

func glyph(r rune) [glyphH]uint8 { return bitfont.Glyph(r) }
