/*
 * Compatibility shim for building go4vl v0.5.0 against older kernel headers
 * (Debian 12 ships 6.1, which lacks two fourccs go4vl names). Put the
 * directory holding this linux/ folder first on the include path:
 *   CGO_CFLAGS="-O2 -g -I<repo>/device/camera/v4l2shim"
 * It includes the system header and adds only what is missing.
 */
#ifndef CALLBOX_V4L2SHIM_VIDEODEV2_H
#define CALLBOX_V4L2SHIM_VIDEODEV2_H

#include_next <linux/videodev2.h>

#ifndef V4L2_PIX_FMT_AV1_FRAME
#define V4L2_PIX_FMT_AV1_FRAME v4l2_fourcc('A', 'V', '1', 'F') /* AV1 parsed frame */
#endif

#ifndef V4L2_PIX_FMT_P012
#define V4L2_PIX_FMT_P012 v4l2_fourcc('P', '0', '1', '2') /* 24 Y/CbCr 4:2:0 12-bit per component */
#endif

#endif /* CALLBOX_V4L2SHIM_VIDEODEV2_H */
