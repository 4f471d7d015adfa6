"""What a file is by its first bytes: an MP4-family video, a WebM, or a HEIC/AVIF photo in the same box.

MP4, QuickTime, 3GP, HEIC and AVIF files are all ISO-BMFF: they open with an ``ftyp`` box, so
"``ftyp`` at byte 4" says nothing about whether the file is a video. The box's brands do: a major
brand, then the compatible ones. One reading of them serves both the first-frame check (which
names a HEIC or AVIF it refuses) and the Kling videos view (which serves videos only).
"""

from __future__ import annotations

#: Brands of video files: ISO base media (isom, iso2...), MP4 v1/v2, AVC/HEVC/AV1 in MP4, DASH and
#: CMAF segments, iTunes M4V, QuickTime, 3GPP/3GPP2, Flash's F4V and Sony's XAVC.
VIDEO_BRANDS = frozenset(
    {
        *(b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso7", b"iso8", b"iso9"),
        *(b"mp41", b"mp42", b"mp71", b"avc1", b"hvc1", b"av01", b"dash", b"msdh", b"msix"),
        *(b"cmfc", b"cmf2", b"M4V ", b"M4VH", b"M4VP", b"qt  ", b"f4v ", b"XAVC", b"mmp4"),
        *(b"3gp4", b"3gp5", b"3gp6", b"3gp7", b"3gp8", b"3gp9", b"3gg6", b"3g2a", b"3g2b", b"3g2c"),
    }
)
#: Brands of still images and image sequences in the same box (HEIF, HEIC, AVIF, MIAF, Canon's CR3):
#: a file naming any of them is a photo, whatever video brand it also lists.
AVIF_BRANDS = frozenset({b"avif", b"avis", b"avio", b"MA1A", b"MA1B"})
IMAGE_BRANDS = AVIF_BRANDS | frozenset(
    {
        *(b"mif1", b"mif2", b"msf1", b"miaf", b"heic", b"heix", b"heim", b"heis"),
        *(b"hevc", b"hevx", b"hevm", b"hevs", b"jpeg", b"crx "),
    }
)
#: How many first bytes to read to see a whole ``ftyp`` box in practice.
HEAD_BYTES = 4096
_EBML = b"\x1a\x45\xdf\xa3"


def iso_brands(head: bytes) -> tuple[bytes, ...] | None:
    """
    The brands of an ISO-BMFF file's ``ftyp`` box, major first, or ``None`` when it opens with none.

    :param head: the file's first bytes (:data:`HEAD_BYTES` is plenty); a box cut short gives the
        brands it holds.
    """
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    size = int.from_bytes(head[:4], "big")
    if size < 16:  # 0 ("to the end of the file") and 1 (a 64-bit size) are no ftyp's sizes
        return (head[8:12],) if size in (0, 1) else None
    end = min(size, len(head))
    return (head[8:12], *(head[at : at + 4] for at in range(16, end - 3, 4)))


def image_brand(head: bytes) -> str | None:
    """``"AVIF"`` or ``"HEIC"`` for an ISO-BMFF photo (any image brand), else ``None``."""
    brands = set(iso_brands(head) or ())
    if brands & AVIF_BRANDS:
        return "AVIF"
    return "HEIC" if brands & IMAGE_BRANDS else None


def video_type(head: bytes) -> str | None:
    """
    The media type to serve a file as, if its first bytes show a video, else ``None``.

    An ISO-BMFF file is a video when one of its brands is a video brand and none is an image
    brand (a HEIC lists ``mif1``; an AVIF ``avif``; some list ``iso8`` too), and is served as
    ``video/mp4``, which browsers play for every brand listed. An EBML file is a WebM (or a
    Matroska video).
    """
    brands = set(iso_brands(head) or ())
    if brands:
        return "video/mp4" if brands & VIDEO_BRANDS and not brands & IMAGE_BRANDS else None
    if head.startswith(_EBML):
        return "video/webm" if b"webm" in head[:64] else "video/x-matroska"
    return None


__all__ = ["HEAD_BYTES", "IMAGE_BRANDS", "VIDEO_BRANDS", "image_brand", "iso_brands", "video_type"]
