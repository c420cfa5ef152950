package hass

import (
	"encoding/json"
	"fmt"
	"strings"
)

// CheckDiscovery checks one discovery config message the way Home
// Assistant's MQTT integration documents it for the platform named in
// the topic (<prefix>/<component>/<node id>/<object id>/config): the keys
// each platform requires, their types, a unique_id, and a device block
// with identifiers. The tests run it on what the box publishes.
func CheckDiscovery(topic string, payload []byte) error {
	parts := strings.Split(topic, "/")
	if len(parts) != 5 || parts[4] != "config" {
		return fmt.Errorf("topic %q is not <prefix>/<component>/<node_id>/<object_id>/config", topic)
	}
	for _, id := range parts[2:4] {
		if id == "" || strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != "" {
			return fmt.Errorf("topic %q: node and object ids are [a-zA-Z0-9_-]", topic)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	str := func(k string) error {
		v, ok := m[k].(string)
		if !ok || v == "" {
			return fmt.Errorf("%s: want a non-empty string, have %v", k, m[k])
		}
		return nil
	}
	strList := func(k string) error {
		l, ok := m[k].([]any)
		if !ok || len(l) == 0 {
			return fmt.Errorf("%s: want a non-empty list, have %v", k, m[k])
		}
		for _, v := range l {
			if s, ok := v.(string); !ok || s == "" {
				return fmt.Errorf("%s: %v is not a non-empty string", k, v)
			}
		}
		return nil
	}
	need := []func() error{
		func() error { return str("name") },
		func() error { return str("unique_id") },
		func() error { return str("availability_topic") },
		func() error {
			d, ok := m["device"].(map[string]any)
			if !ok {
				return fmt.Errorf("device: want an object, have %v", m["device"])
			}
			if l, ok := d["identifiers"].([]any); !ok || len(l) == 0 {
				return fmt.Errorf("device.identifiers: want a non-empty list, have %v", d["identifiers"])
			}
			if s, ok := d["name"].(string); !ok || s == "" {
				return fmt.Errorf("device.name: want a non-empty string")
			}
			return nil
		},
	}
	switch parts[1] {
	case "event":
		need = append(need, func() error { return str("state_topic") }, func() error { return strList("event_types") })
		if dc, ok := m["device_class"]; ok && dc != "doorbell" && dc != "button" && dc != "motion" {
			return fmt.Errorf("device_class %v is not an event device class", dc)
		}
	case "sensor":
		need = append(need, func() error { return str("state_topic") })
		if m["device_class"] == "enum" {
			need = append(need, func() error { return strList("options") })
		}
	case "image":
		need = append(need, func() error {
			if str("image_topic") != nil && str("url_topic") != nil {
				return fmt.Errorf("image: needs image_topic or url_topic")
			}
			if ct, ok := m["content_type"]; ok && !strings.HasPrefix(fmt.Sprint(ct), "image/") {
				return fmt.Errorf("content_type %v is not image/*", ct)
			}
			return nil
		})
	case "button":
		need = append(need, func() error { return str("command_topic") })
	case "binary_sensor":
		need = append(need, func() error { return str("state_topic") })
		switch dc := m["device_class"]; dc {
		case nil, "door", "lock", "opening", "occupancy", "motion", "problem", "connectivity", "running", "sound":
		default: // the ones a box could mean; Home Assistant has more
			return fmt.Errorf("device_class %v is not a binary sensor device class this checker knows", dc)
		}
	default:
		return fmt.Errorf("component %q is not one this checker knows", parts[1])
	}
	for _, f := range need {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}
