package camera

import (
	"fmt"
	"image"
	"image/jpeg"
)

// rawLayout is the memory layout of one uncompressed V4L2 frame: packed
// 4:2:2 (YUYV, UYVY) or 4:2:0 with an interleaved (NV12) or planar (YU12)
// chroma plane. stride is the driver's bytesperline (of the luma plane for
// the 4:2:0 formats).
type rawLayout struct {
	fourcc string
	w, h   int
	stride int
	size   int // bytes one frame needs
}

// newRawLayout checks a raw format and size and fills in the frame size;
// stride 0 (or one too small) means the tightly packed default.
func newRawLayout(fourcc string, w, h, stride int) (rawLayout, error) {
	if w <= 0 || h <= 0 || w%2 != 0 {
		return rawLayout{}, fmt.Errorf("%s frame size %dx%d: width must be even and positive", fourcc, w, h)
	}
	l := rawLayout{fourcc: fourcc, w: w, h: h}
	switch fourcc {
	case "YUYV", "UYVY":
		l.stride = max(stride, 2*w)
		l.size = l.stride * h
	case "NV12", "YU12":
		if h%2 != 0 {
			return rawLayout{}, fmt.Errorf("%s frame size %dx%d: height must be even", fourcc, w, h)
		}
		l.stride = max(stride, w)
		if fourcc == "YU12" && l.stride%2 != 0 {
			return rawLayout{}, fmt.Errorf("%s bytes per line %d: must be even", fourcc, l.stride)
		}
		l.size = l.stride*h + l.stride*h/2
	default:
		return rawLayout{}, fmt.Errorf("pixel format %q is not a raw format callbox converts", fourcc)
	}
	return l, nil
}

// subsample is the chroma subsampling the layout converts into.
func (l rawLayout) subsample() image.YCbCrSubsampleRatio {
	if l.fourcc == "YUYV" || l.fourcc == "UYVY" {
		return image.YCbCrSubsampleRatio422
	}
	return image.YCbCrSubsampleRatio420
}

// convert fills img (made by newImage) from one frame of at least l.size
// bytes. YU12 planes are used in place: img then aliases src.
func (l rawLayout) convert(img *image.YCbCr, src []byte) {
	switch l.fourcc {
	case "YUYV":
		packed422(img, src, l.stride, 0, 1, 2, 3)
	case "UYVY":
		packed422(img, src, l.stride, 1, 0, 3, 2)
	case "NV12":
		img.Y, img.YStride = src[:l.stride*l.h], l.stride
		uv := src[l.stride*l.h:]
		for y := 0; y < l.h/2; y++ {
			row := uv[y*l.stride : y*l.stride+l.w]
			cb := img.Cb[y*img.CStride : y*img.CStride+l.w/2]
			cr := img.Cr[y*img.CStride : y*img.CStride+l.w/2]
			for i := range cb {
				cb[i] = row[2*i]
				cr[i] = row[2*i+1]
			}
		}
	case "YU12":
		ys, cs := l.stride*l.h, l.stride/2*(l.h/2)
		img.Y, img.YStride = src[:ys], l.stride
		img.Cb, img.Cr, img.CStride = src[ys:ys+cs], src[ys+cs:ys+2*cs], l.stride/2
	}
}

// packed422 de-interleaves a packed 4:2:2 frame whose 4-byte groups hold
// Y0, Cb, Y1, Cr at offsets y0, cb, y1, cr.
func packed422(img *image.YCbCr, src []byte, stride, y0, cb, y1, cr int) {
	w := img.Rect.Dx()
	for y := 0; y < img.Rect.Dy(); y++ {
		row := src[y*stride : y*stride+2*w]
		ly := img.Y[y*img.YStride : y*img.YStride+w]
		lb := img.Cb[y*img.CStride : y*img.CStride+w/2]
		lr := img.Cr[y*img.CStride : y*img.CStride+w/2]
		for i := range lb {
			g := row[4*i : 4*i+4]
			ly[2*i] = g[y0]
			lb[i] = g[cb]
			ly[2*i+1] = g[y1]
			lr[i] = g[cr]
		}
	}
}

// rawEncoder turns raw frames of one layout into JPEGs, reusing its image
// between frames. Not safe for concurrent use.
type rawEncoder struct {
	layout  rawLayout
	img     *image.YCbCr
	options jpeg.Options
	hint    int // capacity for the next output: the last size plus slack
}

// newRawEncoder returns an encoder for layout at JPEG quality 1..100.
func newRawEncoder(layout rawLayout, quality int) *rawEncoder {
	return &rawEncoder{
		layout:  layout,
		img:     image.NewYCbCr(image.Rect(0, 0, layout.w, layout.h), layout.subsample()),
		options: jpeg.Options{Quality: quality},
		hint:    layout.w * layout.h / 4,
	}
}

// encode returns a new JPEG (owned by the caller) of the raw frame src,
// which must hold at least layout.size bytes. src is not kept.
func (e *rawEncoder) encode(src []byte) ([]byte, error) {
	if len(src) < e.layout.size {
		return nil, fmt.Errorf("%s frame of %d bytes, want %d", e.layout.fourcc, len(src), e.layout.size)
	}
	e.layout.convert(e.img, src)
	w := &appendWriter{b: make([]byte, 0, e.hint)}
	err := jpeg.Encode(w, e.img, &e.options)
	if e.layout.fourcc == "YU12" || e.layout.fourcc == "NV12" {
		e.img.Y = nil // drop the alias of src; convert sets it again
		if e.layout.fourcc == "YU12" {
			e.img.Cb, e.img.Cr = nil, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("encode %s frame: %w", e.layout.fourcc, err)
	}
	e.hint = len(w.b) + len(w.b)/8
	return w.b, nil
}

// appendWriter collects encoder output. Having Flush and WriteByte stops
// image/jpeg wrapping it in a new bufio.Writer for every frame.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *appendWriter) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

func (w *appendWriter) Flush() error { return nil }
