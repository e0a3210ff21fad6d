package dev.airlock.cli.machine;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class VhostUserDeviceSpecTest {
    @Test
    void shouldParseTheSocketAndDefaultTheRegion() {
        VhostUserDeviceSpec d = VhostUserDeviceSpec.parse("blk,vhost-user=/tmp/vub.sock");
        assertEquals(DeviceSpec.DeviceType.BLK, d.type());
        assertEquals(Path.of("/tmp/vub.sock"), d.socket());
        assertEquals(VhostUserDeviceSpec.DEFAULT_REGION_BYTES, d.regionBytes());
        assertEquals("blk@vhost-user:vub.sock", d.displayName());
        assertEquals(0, d.reconnectSeconds());
    }

    @Test
    void shouldParseTheReconnectWindow() {
        assertEquals(30, VhostUserDeviceSpec.parse("blk,vhost-user=/tmp/vub.sock,reconnect=30").reconnectSeconds());
    }

    @Test
    void shouldParseTheRegionInAnyOrderAndTheColonSpelling() {
        VhostUserDeviceSpec d = VhostUserDeviceSpec.parse("BLK:region=4M,vhost-user=relative/q.sock");
        assertEquals(4L << 20, d.regionBytes());
        assertEquals(Path.of("relative/q.sock"), d.socket());
        assertEquals("blk@vhost-user:q.sock", d.displayName());
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "gpu,vhost-user=/s              | unknown device type 'gpu'",
        "console,vhost-user=/s          | console over vhost-user is not supported (only blk)",
        "rng,vhost-user=/s              | rng over vhost-user is not supported (only blk)",
        "blk                            | say which socket: blk,vhost-user=SOCKET",
        "blk,vhost-user=                | say which socket",
        "blk,region=4M                  | say which socket",
        "blk,vhost-user=/s,image=d.raw  | unknown option 'image=d.raw'",
        "blk,vhost-user=/s,ro           | unknown option 'ro'",
        "blk,vhost-user=/s,             | unknown option ''",
        "blk,vhost-user=/a,vhost-user=/b | option 'vhost-user' given twice",
        "blk,vhost-user=/s,region=1K    | 256 KiB to 1 GiB",
        "blk,vhost-user=/s,region=2G    | 256 KiB to 1 GiB",
        "blk,vhost-user=/s,region=300001 | multiple of 4 KiB",
        "blk,vhost-user=/s,region=lots  | blk: region: not a size: 'lots'",
        "blk,vhost-user=/s,reconnect=5s | reconnect is a number of seconds: '5s'",
        "blk,vhost-user=/s,reconnect=-1 | reconnect is 0 to 86400 seconds",
    })
    void rejectsBadSpecsWithTheReason(String text, String reason) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> VhostUserDeviceSpec.parse(text));
        assertTrue(e.getMessage().contains(reason), e.getMessage());
    }
}
