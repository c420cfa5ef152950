module github.com/callbox/callbox

go 1.26.0

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/eclipse/paho.mqtt.golang v1.5.1
	github.com/gen2brain/malgo v0.11.24
	github.com/vladimirvivien/go4vl v0.5.0
	golang.org/x/net v0.62.0
	golang.org/x/sys v0.50.0
	periph.io/x/conn/v3 v3.7.2
	periph.io/x/host/v3 v3.8.5
)

require (
	github.com/gorilla/websocket v1.5.3 // indirect
	github.com/jonboulle/clockwork v0.4.0 // indirect
	golang.org/x/crypto v0.59.0 // indirect
	golang.org/x/sync v0.17.0 // indirect
)
