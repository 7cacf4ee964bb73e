//! The Debian package, built as README says (`scripts/build-deb.sh`) and
//! inspected with Debian's own tools: its control data and conffiles, its
//! files unpacked into a scratch root, the unit checked by
//! `systemd-analyze verify`, the man pages rendered by `man -l`, the
//! packaged config accepted by the packaged binary, and a reload through
//! the unit's own `ExecReload`.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::output_ok;

#[path = "common/mod.rs"]
mod common;

/// The package, built once for every test here.
fn package() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = output_ok(Command::new(root.join("scripts/build-deb.sh")).current_dir(root));
        let text = String::from_utf8_lossy(&out.stdout);
        let deb = text
            .lines()
            .rev()
            .find(|l| l.trim().ends_with(".deb"))
            .unwrap_or_else(|| panic!("no .deb named in {text}"));
        root.join(deb.trim())
    })
}

fn dpkg_deb(args: &[&str]) -> String {
    let out = output_ok(Command::new("dpkg-deb").args(args));
    String::from_utf8(out.stdout).unwrap()
}

/// The package unpacked into a scratch root.
fn unpacked() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    dpkg_deb(&["-x", package().to_str().unwrap(), root.to_str().unwrap()]);
    (dir, root)
}

#[test]
#[ignore = "builds the release binary and the Debian package (scripts/build-deb.sh)"]
fn the_package_holds_the_binary_config_unit_man_pages_and_completions() {
    let deb = package().to_str().unwrap().to_string();
    let control = dpkg_deb(&["-f", &deb]);
    assert!(control.contains("Package: carbonwatch"), "{control}");
    assert!(control.contains("Section: net"), "{control}");
    let dir = tempfile::tempdir().unwrap();
    dpkg_deb(&["-e", &deb, dir.path().to_str().unwrap()]);
    let conf = std::fs::read_to_string(dir.path().join("conffiles")).unwrap();
    assert!(
        conf.lines()
            .any(|l| l == "/etc/carbonwatch/carbonwatch.toml"),
        "{conf}"
    );
    let postinst = std::fs::read_to_string(dir.path().join("postinst")).unwrap();
    assert!(
        postinst.contains("carbonwatch.service"),
        "the unit is enabled and started: {postinst}"
    );

    let (_keep, root) = unpacked();
    for f in [
        "usr/bin/carbonwatch",
        "etc/carbonwatch/carbonwatch.toml",
        "usr/lib/systemd/system/carbonwatch.service",
        "usr/share/man/man1/carbonwatch.1.gz",
        "usr/share/man/man1/carbonwatch-run.1.gz",
        "usr/share/man/man1/carbonwatch-import-seyren.1.gz",
        "usr/share/man/man5/carbonwatch.toml.5.gz",
        "usr/share/bash-completion/completions/carbonwatch",
        "usr/share/zsh/vendor-completions/_carbonwatch",
        "usr/share/fish/vendor_completions.d/carbonwatch.fish",
        "usr/share/doc/carbonwatch/examples/security-checks.toml",
    ] {
        assert!(root.join(f).exists(), "{f} in the package");
    }
    let bin = root.join("usr/bin/carbonwatch");
    let version = Command::new(&bin).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).contains("(commit "));
    output_ok(
        Command::new(&bin)
            .args(["check-config", "--config"])
            .arg(root.join("etc/carbonwatch/carbonwatch.toml")),
    );
    let bash =
        std::fs::read_to_string(root.join("usr/share/bash-completion/completions/carbonwatch"))
            .unwrap();
    assert!(
        bash.contains("check-config") && bash.contains("import"),
        "completions know the commands"
    );
}

#[test]
#[ignore = "builds the release binary and the Debian package (scripts/build-deb.sh)"]
fn the_unit_verifies_and_the_man_pages_render() {
    let (_keep, root) = unpacked();
    let unit = root.join("usr/lib/systemd/system/carbonwatch.service");
    // verify looks for ExecStart's binary: give it the packaged one.
    let text = std::fs::read_to_string(&unit).unwrap();
    let local = unit.with_file_name("verify-carbonwatch.service");
    std::fs::write(
        &local,
        text.replace(
            "/usr/bin/carbonwatch",
            root.join("usr/bin/carbonwatch").to_str().unwrap(),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&local)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("verify-carbonwatch"))
        .collect();
    assert!(out.status.success() && ours.is_empty(), "{err}");
    for key in [
        "Type=notify",
        "WatchdogSec=",
        "StateDirectory=carbonwatch",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=",
        "SystemCallFilter=",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(text.contains(key), "{key}");
    }

    for page in [
        "man1/carbonwatch.1.gz",
        "man1/carbonwatch-run.1.gz",
        "man5/carbonwatch.toml.5.gz",
    ] {
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(root.join("usr/share/man").join(page))
            .env("MANWIDTH", "100")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{page}: {warnings}");
        assert!(
            warnings.trim().is_empty(),
            "{page} renders without warnings: {warnings}"
        );
        assert!(text.contains("NAME"), "{page}: {text}");
        if page.starts_with("man5") {
            for key in ["max_line_bytes", "spool_dir", "IRCCAT_PORT", "[[cluster]]"] {
                assert!(text.contains(key), "{key} in carbonwatch.toml(5)");
            }
        }
    }
}

#[test]
#[ignore = "builds the release binary and the Debian package (scripts/build-deb.sh)"]
fn the_units_reload_command_reloads_the_packaged_binary() {
    let (dir, root) = unpacked();
    let unit =
        std::fs::read_to_string(root.join("usr/lib/systemd/system/carbonwatch.service")).unwrap();
    let reload = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecReload="))
        .unwrap()
        .to_string();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let socket_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // The packaged config, on free ports.
    let port = common::free_port();
    let conf = std::fs::read_to_string(root.join("etc/carbonwatch/carbonwatch.toml"))
        .unwrap()
        .replace("0.0.0.0:2003\"   #", &format!("127.0.0.1:{port}\"   #"))
        .replace("plaintext_udp = \"0.0.0.0:2003\"", "plaintext_udp = \"\"")
        .replace("pickle_tcp = \"0.0.0.0:2004\"", "pickle_tcp = \"\"")
        .replace("127.0.0.1:8080", "");
    let cfg = dir.path().join("carbonwatch.toml");
    std::fs::write(&cfg, conf).unwrap();
    let child = common::Child(
        Command::new(root.join("usr/bin/carbonwatch"))
            .args(["run", "--config"])
            .arg(&cfg)
            .env("NOTIFY_SOCKET", &socket_path)
            .env("STATE_DIRECTORY", &state)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    common::notifications_until(&sock, "READY=1");
    assert!(
        state.join("carbonwatch.db").exists(),
        "the store is in STATE_DIRECTORY"
    );
    let pid = child.0.id().to_string();
    let status = Command::new("sh")
        .arg("-c")
        .arg(reload.replace("$MAINPID", &pid))
        .status()
        .unwrap();
    assert!(status.success());
    let seen = common::notifications_until(&sock, "READY=1");
    assert!(seen.iter().any(|m| m.contains("RELOADING=1")), "{seen:?}");
    assert!(
        seen.iter().any(|m| m.contains("STATUS=reloaded")),
        "{seen:?}"
    );
}
