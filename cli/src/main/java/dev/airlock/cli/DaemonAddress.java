package dev.airlock.cli;

import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmInfo;
import dev.airlock.hypervisor.process.Credential;
import dev.airlock.hypervisor.process.RemoteHypervisor;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.regex.Pattern;

/**
 * Where a running {@code airlock hypervisor} is and what the commands keep beside it. For a daemon
 * on {@code SOCKET}: the control credential in {@code SOCKET.credential} (written by the daemon), and
 * a state folder {@code SOCKET.d/} (mode 0700) holding each VM's credential
 * ({@code NAME.credential}, 0600, written by {@code airlock vm create}) and the status files that
 * backends and VM processes refresh ({@code NAME.backend.status}, {@code NAME.vm.status}), which
 * {@code airlock status} reads.
 *
 * @param socket the daemon's socket
 */
record DaemonAddress(Path socket) {
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]{0,62}");

    /**
     * The address from a {@code --socket} option, or the default one.
     *
     * @param socket the option's value, or null
     * @return the address
     */
    static DaemonAddress of(Path socket) {
        return new DaemonAddress((socket != null ? socket : HypervisorCommand.defaultSocket()).toAbsolutePath());
    }

    /** Checks a VM name before it becomes a file name. */
    static String checkName(String name) {
        if (!NAME.matcher(name).matches()) {
            throw new IllegalArgumentException("bad VM name '" + name + "': use letters, digits, '_', '.', '-' (at most 63)");
        }
        return name;
    }

    Path stateDir() {
        return socket.resolveSibling(socket.getFileName() + ".d");
    }

    /**
     * A control connection that leaves the VMs alive when closed ({@link RemoteHypervisor#close}
     * would destroy them).
     *
     * @param hypervisor the client
     */
    record Control(RemoteHypervisor hypervisor) implements AutoCloseable {
        @Override
        public void close() {
            hypervisor.disconnect();
        }
    }

    /** Connects as a control client; closing it only disconnects. */
    Control control() {
        return new Control(connect());
    }

    /** Connects as a control client with the credential the daemon wrote. */
    RemoteHypervisor connect() {
        Path file = HypervisorCommand.credentialFile(socket);
        String hex;
        try {
            hex = Files.readString(file, StandardCharsets.US_ASCII).strip();
        } catch (NoSuchFileException e) {
            throw new IllegalStateException("no hypervisor at " + socket + " (" + file + " is missing): start one with 'airlock hypervisor"
                    + " --socket " + socket + "'");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file, e);
        }
        return RemoteHypervisor.connect(socket, Credential.fromHex(hex));
    }

    /** Stores the credential of a VM this client created. */
    void saveCredential(String vmName, Credential credential) {
        write(credentialFile(vmName), credential.toHex() + "\n");
    }

    Credential loadCredential(String vmName) {
        Path file = credentialFile(vmName);
        try {
            return Credential.fromHex(Files.readString(file, StandardCharsets.US_ASCII).strip());
        } catch (NoSuchFileException e) {
            throw new IllegalStateException("no credential for VM '" + vmName + "' (" + file + "): create it with 'airlock vm create "
                    + vmName + "'");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file, e);
        }
    }

    Path credentialFile(String vmName) {
        return stateDir().resolve(checkName(vmName) + ".credential");
    }

    Path statusFile(String vmName, String what) {
        return stateDir().resolve(checkName(vmName) + "." + what + ".status");
    }

    /** Writes {@code text} to {@code file} (0600, in the 0700 state folder) atomically. */
    void write(Path file, String text) {
        try {
            Files.createDirectories(stateDir(), PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
            Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
            Files.deleteIfExists(tmp);
            Files.createFile(tmp, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            Files.writeString(tmp, text, StandardCharsets.UTF_8);
            Files.move(tmp, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file, e);
        }
    }

    /** Finds a VM by name. */
    static VmInfo find(RemoteHypervisor hypervisor, String name) {
        return hypervisor.listVms().stream().filter(v -> v.name().equals(name)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("no VM named '" + name + "' (airlock vm list shows them)"));
    }

    /** The one primary VM. */
    static VmId primary(RemoteHypervisor hypervisor) {
        List<VmInfo> primaries = hypervisor.listVms().stream().filter(v -> v.role() == dev.airlock.hypervisor.VmRole.PRIMARY).toList();
        if (primaries.isEmpty()) {
            throw new IllegalStateException("the hypervisor has no primary VM: create one with 'airlock vm create NAME --primary'");
        }
        return primaries.getFirst().id();
    }
}
