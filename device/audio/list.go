package audio

// PCM is one ALSA PCM that List found.
type PCM struct {
	Name        string `json:"name"`              // for ALSAConfig.Device: "default", "hw:CARD=Device,DEV=0"
	Description string `json:"description"`       // ALSA's description, second line in parentheses
	Default     bool   `json:"default,omitempty"` // the "default" PCM
}

// Devices are the PCMs ALSA offers for capture and for playback. A PCM
// that does both is in both lists.
type Devices struct {
	Capture  []PCM `json:"capture"`
	Playback []PCM `json:"playback"`
}
