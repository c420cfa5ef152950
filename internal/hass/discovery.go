package hass

// Home Assistant's MQTT discovery: one retained config message per entity
// at <discovery prefix>/<component>/<node id>/<object id>/config, all
// naming the same device so that Home Assistant shows one "callbox"
// device with these entities.

type discoveryMsg struct {
	topic   string
	payload []byte
}

// device is the block every entity repeats.
type device struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer"`
	Model        string   `json:"model"`
	SWVersion    string   `json:"sw_version,omitempty"`
}

// common are the keys every entity has.
type common struct {
	Name              string `json:"name"`
	UniqueID          string `json:"unique_id"`
	AvailabilityTopic string `json:"availability_topic"`
	Device            device `json:"device"`
	Icon              string `json:"icon,omitempty"`
}

type eventEntity struct {
	common
	StateTopic  string   `json:"state_topic"`
	DeviceClass string   `json:"device_class"`
	EventTypes  []string `json:"event_types"`
}

type sensorEntity struct {
	common
	StateTopic          string   `json:"state_topic"`
	ValueTemplate       string   `json:"value_template"`
	JSONAttributesTopic string   `json:"json_attributes_topic"`
	DeviceClass         string   `json:"device_class"`
	Options             []string `json:"options"`
}

type imageEntity struct {
	common
	ImageTopic  string `json:"image_topic"`
	ContentType string `json:"content_type"`
}

type binarySensorEntity struct {
	common
	StateTopic  string `json:"state_topic"`
	DeviceClass string `json:"device_class"`
	PayloadOn   string `json:"payload_on"`
	PayloadOff  string `json:"payload_off"`
}

type buttonEntity struct {
	common
	CommandTopic string `json:"command_topic"`
	PayloadPress string `json:"payload_press"`
}

// CallStates are the values of the call state sensor.
var CallStates = []string{"idle", "calling", "ringing", "in call"}

// discovery returns the configs to publish (retained) on each connection.
func (c *Client) discovery() []discoveryMsg {
	dev := device{
		Identifiers:  []string{c.node},
		Name:         c.cfg.Name,
		Manufacturer: "callbox",
		Model:        "callbox video intercom",
		SWVersion:    c.cfg.Version,
	}
	base := func(object, name, icon string) common {
		return common{
			Name:              name,
			UniqueID:          c.node + "_" + object,
			AvailabilityTopic: c.topic(topicAvail),
			Device:            dev,
			Icon:              icon,
		}
	}
	msg := func(component, object string, v any) discoveryMsg {
		return discoveryMsg{
			topic:   c.cfg.DiscoveryPrefix + "/" + component + "/" + c.node + "/" + object + "/config",
			payload: mustJSON(v),
		}
	}
	out := []discoveryMsg{
		msg("event", "doorbell", eventEntity{
			common:      base("doorbell", "Doorbell", ""),
			StateTopic:  c.topic(topicEvent),
			DeviceClass: "doorbell",
			EventTypes:  []string{"ring", "incoming"},
		}),
		msg("sensor", "call_state", sensorEntity{
			common:              base("call_state", "Call state", "mdi:phone"),
			StateTopic:          c.topic(topicState),
			ValueTemplate:       "{{ value_json.state }}",
			JSONAttributesTopic: c.topic(topicState),
			DeviceClass:         "enum",
			Options:             CallStates,
		}),
		msg("image", "last_ring", imageEntity{
			common:      base("last_ring", "Last ring", "mdi:doorbell-video"),
			ImageTopic:  c.topic(topicImage),
			ContentType: "image/jpeg",
		}),
		msg("button", "call", buttonEntity{
			common:       base("call", "Call", "mdi:phone-outgoing"),
			CommandTopic: c.topic(topicCall),
			PayloadPress: "PRESS",
		}),
		msg("button", "hangup", buttonEntity{
			common:       base("hangup", "Hang up", "mdi:phone-hangup"),
			CommandTopic: c.topic(topicHangup),
			PayloadPress: "PRESS",
		}),
	}
	if c.cfg.Door {
		out = append(out, msg("button", "open_door", buttonEntity{
			common:       base("open_door", "Open door", "mdi:door-open"),
			CommandTopic: c.topic(topicOpen),
			PayloadPress: "PRESS",
		}), msg("binary_sensor", "door", binarySensorEntity{
			// device_class lock: on means unlocked, which is what a
			// released strike is; whether the door itself stands open
			// the box cannot know.
			common:      base("door", "Door strike", ""),
			StateTopic:  c.topic(topicDoor),
			DeviceClass: "lock",
			PayloadOn:   "ON",
			PayloadOff:  "OFF",
		}))
	}
	return out
}
