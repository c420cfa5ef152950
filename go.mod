module github.com/callbox/callbox

go 1.26

require github.com/BurntSushi/toml v1.6.0

require (
	github.com/gen2brain/malgo v0.11.24 // indirect
	github.com/jonboulle/clockwork v0.4.0 // indirect
	github.com/vladimirvivien/go4vl v0.5.0 // indirect
	golang.org/x/sys v0.37.0 // indirect
	periph.io/x/conn/v3 v3.7.2 // indirect
	periph.io/x/host/v3 v3.8.5 // indirect
)
