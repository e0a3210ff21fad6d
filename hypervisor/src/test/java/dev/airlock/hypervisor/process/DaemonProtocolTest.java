package dev.airlock.hypervisor.process;

import dev.airlock.hypervisor.HypervisorConfig;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmSpec;
import dev.airlock.memory.sys.UnixSocket;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** The daemon against hostile bytes: random frames on unauthenticated, control and VM connections. */
@Timeout(60)
class DaemonProtocolTest {
    @TempDir
    Path dir;
    private HypervisorDaemon daemon;
    private RemoteHypervisor hypervisor;
    private int baselineFds;

    @BeforeEach
    void start() {
        baselineFds = VmProcess.fdTargets(Path.of("/proc/self/fd")).size();
        daemon = HypervisorDaemon.start(dir.resolve("d.sock"), HypervisorConfig.DEFAULT);
        hypervisor = RemoteHypervisor.connect(daemon.socketPath(), daemon.controlCredential());
    }

    @AfterEach
    void stop() {
        hypervisor.close();
        daemon.close();
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (VmProcess.fdTargets(Path.of("/proc/self/fd")).size() > baselineFds) {
            if (System.nanoTime() - deadline > 0) {
                fail("fds leaked: " + VmProcess.fdTargets(Path.of("/proc/self/fd")));
            }
            Thread.onSpinWait();
        }
        assertTrue(Thread.getAllStackTraces().keySet().stream().noneMatch(t -> t.getName().startsWith("airlock-daemon")),
                "daemon threads ended");
    }

    private static byte[] randomFrame(SplittableRandom random) {
        int payloadLength = random.nextInt(0, 80);
        ByteBuffer frame = ByteBuffer.allocate(4 + WireLayout.HEADER_LENGTH + payloadLength);
        int length = WireLayout.HEADER_LENGTH + payloadLength;
        switch (random.nextInt(6)) {
            case 0 -> length = random.nextInt(); // anything
            case 1 -> length = WireLayout.MAX_FRAME_BYTES + 1;
            default -> { }
        }
        frame.putInt(length).putShort((short) random.nextInt(0, 72)).putShort((short) (random.nextInt(8) == 0 ? 1 : 0))
                .putLong(random.nextInt(4) == 0 ? 0 : random.nextLong(1, 100));
        byte[] payload = new byte[payloadLength];
        random.nextBytes(payload);
        frame.put(payload);
        return frame.array();
    }

    @Test
    void shouldSurviveRandomFramesOnEveryKindOfConnection() {
        SplittableRandom random = new SplittableRandom(0xA1A1_0C4EL);
        for (int i = 0; i < 300; i++) {
            try (UnixSocket raw = UnixSocket.connect(daemon.socketPath())) {
                FrameChannel frames = new FrameChannel(raw);
                switch (i % 3) {
                    case 0 -> { } // unauthenticated
                    case 1 -> frames.send(WireLayout.HELLO_CONTROL, 1, new FrameChannel.Writer().raw(daemon.controlCredential().bytes()));
                    default -> {
                        VmId vm = hypervisor.createVm(VmSpec.secondary("fuzz" + i, 4096));
                        frames.send(WireLayout.ATTACH, 1, new FrameChannel.Writer().raw(hypervisor.credential(vm).bytes()));
                    }
                }
                for (int n = random.nextInt(1, 4); n > 0; n--) {
                    raw.send(randomFrame(random));
                }
            } catch (RuntimeException e) {
                // the daemon may drop the connection while we write: that is the point
            }
        }
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (daemon.connectionCount() > 1) {
            if (System.nanoTime() - deadline > 0) {
                fail("connections left: " + daemon.connectionCount());
            }
            Thread.onSpinWait();
        }
        assertNotNull(hypervisor.listVms(), "the daemon keeps serving");
        assertEquals(0, hypervisor.listVms().stream().filter(v -> v.name().startsWith("fuzz")
                && v.state() != dev.airlock.hypervisor.VmState.CREATED).count());
    }

    @Test
    void rejectsAnOversizedMessageWithoutDroppingTheConnection() {
        try (UnixSocket raw = UnixSocket.connect(daemon.socketPath())) {
            FrameChannel frames = new FrameChannel(raw);
            VmId p = hypervisor.createVm(VmSpec.primary("host", 4096));
            VmId s = hypervisor.createVm(VmSpec.secondary("guest", 4096));
            hypervisor.connectMessageQueues(p, s, 2);
            hypervisor.startVm(s);
            frames.send(WireLayout.ATTACH, 1, new FrameChannel.Writer().raw(hypervisor.credential(s).bytes()));
            assertEquals(WireLayout.RESPONSE, frames.receive().type());
            byte[] big = new byte[HypervisorConfig.DEFAULT_MAX_MESSAGE_BYTES + 1];
            frames.send(WireLayout.SEND, 2, new FrameChannel.Writer().i32(p.value()).bytes(big, 0, big.length));
            FrameChannel.Frame response = nextResponse(frames);
            assertEquals(WireLayout.STATUS_REFUSED, response.payload().u8());
            byte[] tooBig = new byte[HypervisorConfig.DEFAULT_MAX_MESSAGE_BYTES + 2]; // beyond what a request may carry
            frames.send(WireLayout.SEND, 3, new FrameChannel.Writer().i32(p.value()).bytes(tooBig, 0, tooBig.length));
            assertEquals(null, nextResponse(frames), "a frame the protocol forbids drops the connection");
        }
    }

    private static FrameChannel.Frame nextResponse(FrameChannel frames) {
        while (true) {
            FrameChannel.Frame frame;
            try {
                frame = frames.receive();
            } catch (dev.airlock.memory.sys.NativeCallException e) {
                assertEquals(dev.airlock.memory.sys.Errno.ECONNRESET, e.errno());
                return null; // dropped with bytes of ours unread
            }
            if (frame == null || frame.type() == WireLayout.RESPONSE) {
                return frame;
            }
            frame.closeFds();
        }
    }
}
