################################################################################
#
# callbox
#
################################################################################

# The source is the repository this BR2_EXTERNAL tree lives in.
CALLBOX_SITE = $(realpath $(BR2_EXTERNAL_CALLBOX_PATH)/..)
CALLBOX_SITE_METHOD = local
# Build outputs and this tree (where an O= directory may live) are not
# sources.
CALLBOX_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude=/bin --exclude=/demo-out --exclude=/buildroot

# The repository's version, as its Makefile prints it (`make version`), and
# its commit, as the Makefile stamps it. The version names the build
# directory, so a new commit is built afresh; uncommitted edits need
# `make callbox-rebuild`, or `make callbox-reconfigure` if go.mod changed.
CALLBOX_VERSION = $(shell unset MAKEFLAGS MFLAGS MAKELEVEL; \
	make -s --no-print-directory -C '$(CALLBOX_SITE)' version 2>/dev/null || echo unknown)
CALLBOX_COMMIT = $(shell git -C '$(CALLBOX_SITE)' rev-parse --short=8 HEAD 2>/dev/null || echo unknown)

CALLBOX_GOMOD = github.com/callbox/callbox
# stream/echo links libspeexdsp and stream/opus libopus: built first, into
# the staging sysroot.
CALLBOX_DEPENDENCIES = speexdsp opus
CALLBOX_BUILD_TARGETS = cmd/callboxd cmd/callbox
# As the repository's Makefile: a position-independent executable with
# full RELRO and BIND_NOW. The golang infrastructure appends its own
# options (-ldflags, -tags, -trimpath) to CALLBOX_BUILD_OPTS.
CALLBOX_BUILD_OPTS = -buildmode=pie
CALLBOX_LDFLAGS = \
	-bindnow \
	-X main.version=$(CALLBOX_VERSION) \
	-X main.commit=$(CALLBOX_COMMIT)

# As the repository's Makefile: HTTP/2 left out of the control API, and
# miniaudio reduced to its ALSA and null backends, C code without unwind
# tables (a smaller binary).
CALLBOX_TAGS = nethttpomithttp2
CALLBOX_MINIAUDIO_CFLAGS = -DMA_ENABLE_ONLY_SPECIFIC_BACKENDS -DMA_ENABLE_ALSA -DMA_ENABLE_NULL \
	-DMA_NO_DECODING -DMA_NO_ENCODING -DMA_NO_GENERATION -DMA_NO_RESOURCE_MANAGER -DMA_NO_NODE_GRAPH -DMA_NO_ENGINE \
	-fno-asynchronous-unwind-tables -fno-unwind-tables

# cgo is required (go4vl, malgo). go4vl needs V4L2 fourccs that older
# kernel headers lack; the repository's header shim adds them.
CALLBOX_GO_ENV = \
	CGO_ENABLED=1 \
	CGO_CFLAGS="$(TARGET_CFLAGS) $(CALLBOX_MINIAUDIO_CFLAGS) -I$(@D)/device/camera/v4l2shim"

# The golang infrastructure vendors modules in the download step and then
# builds offline (GOFLAGS=-mod=vendor GOPROXY=off). A local package has no
# download step, so vendor before configuring, when host-go exists. This is
# the only step that uses the network; modules stay cached in
# $(HOST_GO_GOPATH)/pkg/mod. A vendor/ directory in the repository is used
# as it is.
CALLBOX_GOPROXY ?= https://proxy.golang.org,direct
define CALLBOX_GO_VENDOR
	if [ ! -d '$(CALLBOX_OVERRIDE_SRCDIR)/vendor' ]; then \
		rm -rf $(@D)/vendor && \
		cd $(@D) && \
		$(HOST_GO_COMMON_ENV) GOPROXY='$(CALLBOX_GOPROXY)' \
			$(GO_BIN) mod vendor -modcacherw; \
	fi
endef
CALLBOX_PRE_CONFIGURE_HOOKS += CALLBOX_GO_VENDOR

# Buildroot's users table makes the user at build time: systemd-sysusers
# is optional in buildroot (BR2_PACKAGE_SYSTEMD_SYSUSERS, off by default).
# Keep in step with systemd/callbox.sysusers. video, audio and gpio open
# the camera, the sound card and the GPIO character device.
define CALLBOX_USERS
	callbox -1 callbox -1 * /var/lib/callbox - video,audio,gpio callbox video intercom
endef

# The state directory holds the box's identity key.
define CALLBOX_PERMISSIONS
	/var/lib/callbox d 0700 callbox callbox - - - - -
endef

# With BR2_PACKAGE_SYSTEMD_SYSUSERS the sysusers.d file recreates the
# same user if /etc is reset; otherwise the users table above did it.
define CALLBOX_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/systemd/callbox.service \
		$(TARGET_DIR)/usr/lib/systemd/system/callbox.service
	$(INSTALL) -D -m 0644 $(@D)/systemd/callbox.sysusers \
		$(TARGET_DIR)/usr/lib/sysusers.d/callbox.conf
	$(INSTALL) -D -m 0644 $(@D)/systemd/callbox.tmpfiles \
		$(TARGET_DIR)/usr/lib/tmpfiles.d/callbox.conf
endef

# A rootfs overlay replaces the default configuration if it has its own.
define CALLBOX_INSTALL_CONFIG
	$(INSTALL) -D -m 0644 $(@D)/systemd/callbox.toml \
		$(TARGET_DIR)/etc/callbox/callbox.toml
endef
CALLBOX_POST_INSTALL_TARGET_HOOKS += CALLBOX_INSTALL_CONFIG

# Raspberry Pi OS gives /dev/gpiochip* to the gpio group, and the DMA
# heaps a camera module's frame buffers come from to group video;
# buildroot's udev leaves them to root.
ifeq ($(BR2_PACKAGE_HAS_UDEV),y)
define CALLBOX_INSTALL_UDEV_RULES
	$(INSTALL) -D -m 0644 $(CALLBOX_PKGDIR)/60-callbox-gpio.rules \
		$(TARGET_DIR)/lib/udev/rules.d/60-callbox-gpio.rules
endef
CALLBOX_POST_INSTALL_TARGET_HOOKS += CALLBOX_INSTALL_UDEV_RULES
ifeq ($(BR2_PACKAGE_CALLBOX_CAMERA_MODULES),y)
define CALLBOX_INSTALL_CAMERA_UDEV_RULES
	$(INSTALL) -D -m 0644 $(CALLBOX_PKGDIR)/60-callbox-camera.rules \
		$(TARGET_DIR)/lib/udev/rules.d/60-callbox-camera.rules
endef
CALLBOX_POST_INSTALL_TARGET_HOOKS += CALLBOX_INSTALL_CAMERA_UDEV_RULES
endif
endif

$(eval $(golang-package))
