"""Settings the allocation domain adds to settings.cfg."""

from tracker.settings import Setting, integer, number, string, timezone_name

SETTINGS = (
    Setting("ALLOCATION_TIMEZONE", "UTC", timezone_name),
    Setting("ALLOCATION_CPU_RESOURCE", "cpu", string(100)),
    Setting("ALLOCATION_DISK_RESOURCE", "disk", string(100)),
    Setting("ALLOCATION_NEAR_PERCENT", 80.0, number(0, 100)),
    Setting("ALLOCATION_IMPORT_CHUNK_SIZE", 5000, integer(1, 100000)),
    Setting("ALLOCATION_UPLOAD_MAX_BYTES", 64 * 1024 * 1024, integer(1024, 2**31 - 1)),
)
