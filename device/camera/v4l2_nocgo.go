//go:build !(linux && cgo)

package camera

// openDriver fails: this build has no go4vl.
func openDriver(path string) (driver, error) {
	return nil, ErrNoV4L2
}
