//! The image store against real archives: the images `images/build.sh` makes from Debian
//! packages, and docker archives built here by hand.
//!
//! Tests that mount overlays or chroot need root; run as another user they say so and pass
//! without checking, since only a root agent can run containers at all.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use rkube_agent::image::{Digest, Image, ImageError, ImageStore, PullPolicy, Rootfs, is_mount_point};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The directory with the built archives. `images/build.sh` returns at once when they are up
/// to date, so it runs every time; once per test binary, and its own lock keeps concurrent
/// test binaries from building at the same time.
fn images_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = repo_root().join("target/images");
        let status = Command::new("bash")
            .arg(repo_root().join("images/build.sh"))
            .arg(&out)
            .status()
            .expect("run images/build.sh");
        assert!(status.success(), "images/build.sh failed: {status}");
        out
    })
}

fn is_root() -> bool {
    if rustix::process::geteuid().is_root() {
        true
    } else {
        eprintln!("not root: skipping the checks that mount overlays");
        false
    }
}

/// A store in a fresh temporary directory with the four built images imported.
fn store_with_images() -> Result<(tempfile::TempDir, ImageStore), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = ImageStore::open(&dir.path().join("store"))?;
    for archive in ["nginx.tar", "busybox.tar", "curl.tar", "busyboxplus-curl.tar"] {
        store.import(&images_dir().join(archive))?;
    }
    Ok((dir, store))
}

/// Releases a container's rootfs when dropped, so that a failing assertion does not leave a
/// mount behind.
struct Mounted<'a> {
    store: &'a ImageStore,
    rootfs: Rootfs,
}

impl<'a> Mounted<'a> {
    fn new(store: &'a ImageStore, id: &str, image: &Image, dest: &Path) -> Result<Mounted<'a>, ImageError> {
        Ok(Mounted { store, rootfs: store.prepare_rootfs(id, image, dest)? })
    }

    fn path(&self) -> &Path {
        &self.rootfs.path
    }
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        if let Err(err) = self.store.release_rootfs(&self.rootfs.container_id, &self.rootfs.path) {
            eprintln!("releasing {}: {err}", self.rootfs.path.display());
        }
    }
}

/// Runs a command in a chroot with a clean environment, returning its output.
fn chroot(root: &Path, args: &[&str]) -> std::io::Result<Output> {
    Command::new("chroot")
        .arg(root)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("RKUBE_TEST_VAR", "from-the-test")
        .output()
}

#[track_caller]
fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn mounts_under(path: &Path) -> std::io::Result<Vec<String>> {
    let needle = path.to_string_lossy().into_owned();
    Ok(fs::read_to_string("/proc/self/mountinfo")?
        .lines()
        .filter(|line| line.contains(&needle))
        .map(String::from)
        .collect())
}

#[test]
fn built_images_import_and_resolve() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = ImageStore::open(dir.path())?;

    let summary = fs::read_to_string(images_dir().join("images.txt"))?;
    let built: BTreeMap<&str, &str> = summary
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some((*fields.get(2)?, *fields.get(3)?))
        })
        .collect();
    assert_eq!(built.len(), 4, "images.txt: {summary}");

    for (archive, reference) in [
        ("nginx.tar", "docker.io/library/nginx:latest"),
        ("busybox.tar", "docker.io/library/busybox:latest"),
        ("curl.tar", "docker.io/curlimages/curl:latest"),
        ("busyboxplus-curl.tar", "docker.io/radial/busyboxplus:curl"),
    ] {
        let imported = store.import(&images_dir().join(archive))?;
        assert_eq!(imported.len(), 1, "{archive}");
        assert_eq!(imported[0].references, vec![reference.to_string()], "{archive}");
        assert_eq!(imported[0].manifest_digest.to_string(), built[reference], "{archive} digest vs images.txt");
        // Importing again changes nothing.
        assert_eq!(store.import(&images_dir().join(archive))?, imported);
    }
    assert_eq!(store.list()?.len(), 4);

    let nginx = store.resolve("nginx")?;
    assert_eq!(nginx.reference, "docker.io/library/nginx:latest");
    assert_eq!(nginx.config.cmd, ["nginx", "-g", "daemon off;"]);
    assert!(nginx.config.entrypoint.is_empty());
    assert_eq!(nginx.config.exposed_ports, ["80/tcp"]);
    assert_eq!(nginx.config.stop_signal.as_deref(), Some("SIGQUIT"));
    assert!(nginx.config.env.iter().any(|e| e.starts_with("PATH=/usr/local/sbin:")), "{:?}", nginx.config.env);
    assert_eq!(nginx.layers.len(), 1);
    assert_eq!(nginx.layers[0].media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
    for alias in ["nginx:latest", "docker.io/nginx", "docker.io/library/nginx:latest", "library/nginx"] {
        assert_eq!(store.resolve(alias)?.manifest_digest, nginx.manifest_digest, "{alias}");
    }
    let by_digest = store.resolve(&format!("nginx@{}", nginx.manifest_digest))?;
    assert_eq!(by_digest.reference, format!("docker.io/library/nginx@{}", nginx.manifest_digest));
    assert_eq!(by_digest.config, nginx.config);

    assert_eq!(store.resolve("busybox")?.config.cmd, ["sh"]);
    let curl = store.resolve("curlimages/curl")?;
    assert_eq!(curl.config.entrypoint, ["/entrypoint.sh"]);
    assert_eq!(curl.config.cmd, ["curl"]);
    assert_eq!(store.resolve("radial/busyboxplus:curl")?.config.cmd, ["/bin/sh"]);

    assert!(matches!(store.resolve("nginx:1.25"), Err(ImageError::NotFound(_))));
    assert!(matches!(store.resolve(&format!("nginx@{}", Digest::of_bytes(b"nope"))), Err(ImageError::NotFound(_))));
    assert!(matches!(store.resolve("radial/busyboxplus"), Err(ImageError::NotFound(_))));

    // Every policy takes a present image from the store.
    for policy in [PullPolicy::Always, PullPolicy::IfNotPresent, PullPolicy::Never] {
        assert_eq!(store.ensure("nginx", policy)?.manifest_digest, nginx.manifest_digest);
    }
    let err = store.ensure("nginx:1.25", PullPolicy::Never).expect_err("not imported");
    assert_eq!(err.reason(), "ErrImageNeverPull");

    // Tags are references like any other.
    store.tag("nginx", "my-nginx:v1")?;
    assert_eq!(store.resolve("my-nginx:v1")?.manifest_digest, nginx.manifest_digest);
    assert!(store.untag("my-nginx:v1")?);
    assert!(!store.untag("my-nginx:v1")?);
    Ok(())
}

#[test]
fn rootfs_overlays_share_layers_and_release_cleanly() -> TestResult {
    let (dir, store) = store_with_images()?;
    if !is_root() {
        return Ok(());
    }
    let nginx = store.resolve("nginx")?;
    let dest_a = dir.path().join("bundles/a/rootfs");
    let dest_b = dir.path().join("bundles/b/rootfs");
    {
        let a = Mounted::new(&store, "container-a", &nginx, &dest_a)?;
        let b = Mounted::new(&store, "container-b", &nginx, &dest_b)?;

        // Both containers stack the same unpacked layer directories.
        assert_eq!(a.rootfs.lower_dirs, b.rootfs.lower_dirs);
        assert_eq!(a.rootfs.lower_dirs, [store.layer_dir(&nginx.layers[0].digest)]);
        assert_ne!(a.rootfs.upper_dir, b.rootfs.upper_dir);
        assert!(is_mount_point(a.path())?);
        assert!(is_mount_point(b.path())?);

        let sh = fs::read_link(a.path().join("bin/sh"))?;
        assert_eq!(sh, Path::new("../bin/busybox"));
        assert!(a.path().join("bin/busybox").is_file());
        assert!(fs::metadata(a.path().join("usr/sbin/nginx"))?.len() > 100_000);
        let index = fs::read_to_string(a.path().join("usr/share/nginx/html/index.html"))?;
        assert!(index.contains("<title>Welcome to nginx!</title>"), "{index}");
        let conf = fs::read_to_string(a.path().join("etc/nginx/nginx.conf"))?;
        assert!(conf.contains("include /etc/nginx/conf.d/*.conf;"), "{conf}");
        assert!(fs::read_to_string(a.path().join("etc/nginx/conf.d/default.conf"))?.contains("listen       80;"));
        assert!(fs::read_to_string(a.path().join("etc/passwd"))?.contains("nobody:x:65534:"));
        assert!(a.path().join("etc/nsswitch.conf").is_file());
        assert_eq!(fs::metadata(a.path().join("tmp"))?.permissions().mode() & 0o7777, 0o1777);

        // Writes land in the writing container's upper layer only.
        fs::write(a.path().join("tmp/only-in-a"), "a")?;
        fs::remove_file(a.path().join("usr/share/nginx/html/50x.html"))?;
        assert!(!b.path().join("tmp/only-in-a").exists());
        assert!(b.path().join("usr/share/nginx/html/50x.html").exists());
        assert!(a.rootfs.upper_dir.join("tmp/only-in-a").exists());
        assert!(a.rootfs.lower_dirs[0].join("usr/share/nginx/html/50x.html").exists());

        // A second prepare on a mounted destination is refused rather than stacked.
        assert!(matches!(store.prepare_rootfs("container-a", &nginx, &dest_a), Err(ImageError::AlreadyMounted(_))));
    }

    // Dropping the guards released both: nothing of the store is mounted any more, the
    // per-container directories and destinations are gone, and the shared layer stays.
    assert_eq!(mounts_under(dir.path())?, Vec::<String>::new());
    assert!(!dest_a.exists() && !dest_b.exists());
    assert!(!store.root().join("containers/container-a").exists());
    assert!(!store.root().join("containers/container-b").exists());
    assert!(store.layer_dir(&nginx.layers[0].digest).join("usr/sbin/nginx").is_file());

    // Releasing again, or releasing what was never prepared, is harmless.
    store.release_rootfs("container-a", &dest_a)?;
    store.release_rootfs("never-prepared", &dir.path().join("nowhere"))?;

    // A new container of the same id starts from the image again.
    let again = Mounted::new(&store, "container-a", &nginx, &dest_a)?;
    assert!(!again.path().join("tmp/only-in-a").exists());
    assert!(again.path().join("usr/share/nginx/html/50x.html").exists());
    drop(again);
    assert_eq!(mounts_under(dir.path())?, Vec::<String>::new());
    Ok(())
}

/// The tutorial's ConfigMap (`default.conf` of the kubernetes https-nginx example).
const TUTORIAL_DEFAULT_CONF: &str = "server {
        listen 80 default_server;
        listen [::]:80 default_server ipv6only=on;

        listen 443 ssl;

        root /usr/share/nginx/html;
        index index.html;

        server_name localhost;
        ssl_certificate /etc/nginx/ssl/tls.crt;
        ssl_certificate_key /etc/nginx/ssl/tls.key;

        location / {
                try_files $uri $uri/ =404;
        }
}
";

#[test]
fn nginx_serves_http_and_the_tutorials_https_to_curl() -> TestResult {
    let (dir, store) = store_with_images()?;
    if !is_root() {
        return Ok(());
    }
    let nginx = Mounted::new(&store, "nginx", &store.resolve("nginx")?, &dir.path().join("nginx"))?;
    let curl = Mounted::new(&store, "curl", &store.resolve("curlimages/curl")?, &dir.path().join("curl"))?;

    // The image as built: the configuration parses, and the shell and printenv work.
    assert_success("nginx -t", &chroot(nginx.path(), &["nginx", "-t"])?);
    let shell = chroot(nginx.path(), &["/bin/sh", "-c", "printenv; echo ok"])?;
    assert_success("sh -c printenv", &shell);
    let stdout = String::from_utf8_lossy(&shell.stdout);
    assert!(stdout.contains("RKUBE_TEST_VAR=from-the-test\n") && stdout.ends_with("ok\n"), "{stdout}");
    let single = chroot(nginx.path(), &["printenv", "RKUBE_TEST_VAR"])?;
    assert_eq!(String::from_utf8_lossy(&single.stdout), "from-the-test\n");

    // The tutorial mounts its ConfigMap over conf.d and its Secret at /etc/nginx/ssl.
    let ssl = nginx.path().join("etc/nginx/ssl");
    fs::create_dir_all(&ssl)?;
    let openssl = Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "2", "-newkey", "rsa:2048", "-subj", "/CN=my-nginx/O=my-nginx"])
        .arg("-keyout")
        .arg(ssl.join("tls.key"))
        .arg("-out")
        .arg(ssl.join("tls.crt"))
        .output()?;
    assert_success("openssl req", &openssl);
    fs::write(nginx.path().join("etc/nginx/conf.d/default.conf"), TUTORIAL_DEFAULT_CONF)?;
    fs::copy(ssl.join("tls.crt"), curl.path().join("tmp/ca.crt"))?;
    assert_success("nginx -t with the tutorial's config", &chroot(nginx.path(), &["nginx", "-t"])?);

    // Serve for real, in a private network and mount namespace so that nothing binds the
    // host's ports and the /proc and /dev mounts vanish with the namespace.
    let script = r#"
        set -e
        N="$1"; C="$2"
        mount -t proc proc "$N/proc"
        mount --bind /dev "$N/dev"
        chroot "$N" ip link set lo up
        # Appending, because nginx reopens its stdout through /dev/stdout for the access log,
        # and a second, non-appending description would overwrite those lines.
        chroot "$N" nginx -g 'daemon off;' >>"$N/tmp/nginx.out" 2>&1 &
        pid=$!
        trap 'kill -QUIT $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
        i=0
        until chroot "$C" curl -s -o /dev/null http://127.0.0.1/; do
          i=$((i + 1)); [ "$i" -lt 100 ] || { cat "$N/tmp/nginx.out"; exit 1; }
          sleep 0.1
        done
        echo "http: $(chroot "$C" curl -sS http://127.0.0.1/ | grep -o '<title>.*</title>')"
        echo "ipv6: $(chroot "$C" curl -sS 'http://[::1]/' | grep -o '<title>.*</title>')"
        echo "https: $(chroot "$C" curl -sS --cacert /tmp/ca.crt --resolve my-nginx:443:127.0.0.1 https://my-nginx/ | grep -o '<title>.*</title>')"
    "#;
    let served = Command::new("unshare")
        .args(["--net", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh"])
        .arg(nginx.path())
        .arg(curl.path())
        .output()?;
    assert_success("serving nginx", &served);
    assert_eq!(
        String::from_utf8_lossy(&served.stdout),
        "http: <title>Welcome to nginx!</title>\n\
         ipv6: <title>Welcome to nginx!</title>\n\
         https: <title>Welcome to nginx!</title>\n"
    );
    // The access log went to nginx's stdout, as `kubectl logs` expects.
    let log = fs::read_to_string(nginx.path().join("tmp/nginx.out"))?;
    assert!(log.contains("\"GET / HTTP/1.1\" 200 615"), "{log}");

    drop(nginx);
    drop(curl);
    assert_eq!(mounts_under(dir.path())?, Vec::<String>::new());
    Ok(())
}

#[test]
fn curl_and_busybox_images_run() -> TestResult {
    let (dir, store) = store_with_images()?;
    if !is_root() {
        return Ok(());
    }
    for (id, reference) in [("curl", "curlimages/curl"), ("busyboxplus", "radial/busyboxplus:curl")] {
        let rootfs = Mounted::new(&store, id, &store.resolve(reference)?, &dir.path().join(id))?;
        let version = chroot(rootfs.path(), &["curl", "--version"])?;
        assert_success("curl --version", &version);
        let text = String::from_utf8_lossy(&version.stdout);
        assert!(text.starts_with("curl 7.") && text.contains("OpenSSL/3"), "{text}");
        let bundle = fs::read_to_string(rootfs.path().join("etc/ssl/certs/ca-certificates.crt"))?;
        assert!(bundle.matches("-----BEGIN CERTIFICATE-----").count() > 100, "CA bundle too small");
    }

    // The curlimages entrypoint runs curl for options and anything else as a command, which
    // is how the tutorial's `command: [sh, -c, ...]` and `kubectl exec curl -- curl` both work.
    let curl = Mounted::new(&store, "curl-entry", &store.resolve("curlimages/curl")?, &dir.path().join("entry"))?;
    let as_options = chroot(curl.path(), &["/entrypoint.sh", "--version"])?;
    assert_success("/entrypoint.sh --version", &as_options);
    assert!(String::from_utf8_lossy(&as_options.stdout).starts_with("curl 7."));
    let as_command = chroot(curl.path(), &["/entrypoint.sh", "sh", "-c", "echo from-sh"])?;
    assert_eq!(String::from_utf8_lossy(&as_command.stdout), "from-sh\n");
    drop(curl);

    let busybox = Mounted::new(&store, "busybox", &store.resolve("busybox")?, &dir.path().join("busybox"))?;
    let out =
        chroot(busybox.path(), &["sh", "-c", "printenv RKUBE_TEST_VAR; id -u; ls /tmp; wget --help 2>&1 | head -1"])?;
    assert_success("busybox sh", &out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("from-the-test\n0\n"), "{text}");
    drop(busybox);

    assert_eq!(mounts_under(dir.path())?, Vec::<String>::new());
    Ok(())
}

// ---- Hand-built archives.

fn tar_file(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, path, data)
}

fn tar_dir(builder: &mut tar::Builder<Vec<u8>>, path: &str) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(0);
    header.set_mode(0o755);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Directory);
    builder.append_data(&mut header, path, std::io::empty())
}

fn tar_symlink(builder: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(0);
    header.set_mode(0o777);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Symlink);
    builder.append_link(&mut header, path, target)
}

/// Two layers: the first has files, the second deletes one (`.wh.`) and makes a directory
/// opaque (`.wh..wh..opq`), so the merged view tests whiteout handling.
fn hand_built_layers() -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut first = tar::Builder::new(Vec::new());
    tar_dir(&mut first, "etc/")?;
    tar_file(&mut first, "etc/hello", b"hello from layer one\n")?;
    tar_file(&mut first, "etc/gone", b"deleted by layer two\n")?;
    tar_dir(&mut first, "data/")?;
    tar_file(&mut first, "data/old", b"hidden by the opaque directory\n")?;
    tar_symlink(&mut first, "etc/link", "hello")?;
    let first = first.into_inner()?;

    let mut second = tar::Builder::new(Vec::new());
    tar_file(&mut second, "etc/.wh.gone", b"")?;
    tar_dir(&mut second, "data/")?;
    tar_file(&mut second, "data/.wh..wh..opq", b"")?;
    tar_file(&mut second, "data/new", b"from layer two\n")?;
    let second = second.into_inner()?;
    Ok((first, second))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Digest::of_bytes(bytes).hex().to_string()
}

/// A `docker save` archive: `manifest.json`, `<id>.json` and `<dir>/layer.tar`, with the
/// second image reusing the first layer through a symlink, as docker writes shared layers.
fn docker_archive(tamper_layer: bool) -> std::io::Result<Vec<u8>> {
    let (first, second) = hand_built_layers()?;
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Cmd": ["cat", "/etc/hello"],
            "Env": ["PATH=/bin", "GREETING=hi"],
            "WorkingDir": "/etc",
            "User": "65534",
            "ExposedPorts": {"8080/tcp": {}, "53/udp": {}}
        },
        "rootfs": {"type": "layers", "diff_ids": [
            format!("sha256:{}", sha256_hex(&first)),
            format!("sha256:{}", sha256_hex(&second)),
        ]}
    });
    let config = serde_json::to_vec(&config)?;
    let config_name = format!("{}.json", sha256_hex(&config));
    let small_config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(&first))]}
    }))?;
    let small_config_name = format!("{}.json", sha256_hex(&small_config));
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": config_name, "RepoTags": ["example/hello:1.0", "hello:latest"], "Layers": ["aaa/layer.tar", "bbb/layer.tar"]},
        {"Config": small_config_name, "RepoTags": null, "Layers": ["ccc/layer.tar"]}
    ]))?;

    let mut archive = tar::Builder::new(Vec::new());
    tar_dir(&mut archive, "aaa/")?;
    let mut first_stored = first.clone();
    if tamper_layer {
        first_stored[600] ^= 1;
    }
    tar_file(&mut archive, "aaa/layer.tar", &first_stored)?;
    tar_dir(&mut archive, "bbb/")?;
    tar_file(&mut archive, "bbb/layer.tar", &second)?;
    tar_dir(&mut archive, "ccc/")?;
    tar_symlink(&mut archive, "ccc/layer.tar", "../aaa/layer.tar")?;
    tar_file(&mut archive, &config_name, &config)?;
    tar_file(&mut archive, &small_config_name, &small_config)?;
    tar_file(&mut archive, "manifest.json", &manifest)?;
    tar_file(&mut archive, "repositories", b"{}")?;
    archive.into_inner()
}

#[test]
fn docker_archives_import_and_their_whiteouts_apply() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = ImageStore::open(&dir.path().join("store"))?;
    let archive = dir.path().join("hello.tar");
    fs::write(&archive, docker_archive(false)?)?;

    let imported = store.import(&archive)?;
    assert_eq!(imported.len(), 2);
    assert_eq!(imported[0].references, ["docker.io/example/hello:1.0", "docker.io/library/hello:latest"]);
    assert!(imported[1].references.is_empty(), "an untagged image gets no reference");

    let image = store.resolve("example/hello:1.0")?;
    assert_eq!(store.resolve("hello")?.manifest_digest, image.manifest_digest);
    assert_eq!(image.config.cmd, ["cat", "/etc/hello"]);
    assert_eq!(image.config.env, ["PATH=/bin", "GREETING=hi"]);
    assert_eq!(image.config.working_dir, "/etc");
    assert_eq!(image.config.user, "65534");
    assert_eq!(image.config.exposed_ports, ["53/udp", "8080/tcp"]);
    assert_eq!(image.layers.len(), 2);
    assert_eq!(image.layers[0].media_type, "application/vnd.oci.image.layer.v1.tar");
    // The untagged image is still reachable by digest, and shares the first layer.
    let untagged = store.resolve(&format!("anything@{}", imported[1].manifest_digest))?;
    assert_eq!(untagged.layers[0].digest, image.layers[0].digest);

    // The same archive gzipped, as `docker save | gzip` makes it, imports to the same image.
    let gzipped = dir.path().join("hello.tar.gz");
    let mut encoder = flate2::write::GzEncoder::new(fs::File::create(&gzipped)?, flate2::Compression::fast());
    encoder.write_all(&fs::read(&archive)?)?;
    encoder.finish()?;
    assert_eq!(store.import(&gzipped)?, imported);

    if !is_root() {
        return Ok(());
    }
    // Two containers starting at once both unpack; one copy wins and both get its directory.
    let racers: Vec<_> = (0..2)
        .map(|_| {
            let (store, image) = (store.clone(), image.clone());
            std::thread::spawn(move || store.unpack(&image))
        })
        .collect();
    for racer in racers {
        let dirs = racer.join().map_err(|_| "unpacking thread panicked")??;
        assert_eq!(dirs, image.layers.iter().map(|layer| store.layer_dir(&layer.digest)).collect::<Vec<_>>());
    }
    assert_eq!(fs::read_dir(store.root().join("tmp"))?.count(), 0, "staging directories are cleaned up");

    let rootfs = Mounted::new(&store, "hello", &image, &dir.path().join("rootfs"))?;
    let root = rootfs.path();
    assert_eq!(fs::read_to_string(root.join("etc/hello"))?, "hello from layer one\n");
    assert_eq!(fs::read_link(root.join("etc/link"))?, Path::new("hello"));
    assert!(!root.join("etc/gone").exists(), "the whiteout hides etc/gone");
    assert!(!root.join("data/old").exists(), "the opaque directory hides data/old");
    assert_eq!(fs::read_to_string(root.join("data/new"))?, "from layer two\n");
    // In the layer directory itself the whiteout is overlayfs's 0:0 character device.
    let second_layer = store.layer_dir(&image.layers[1].digest);
    let whiteout = fs::symlink_metadata(second_layer.join("etc/gone"))?;
    assert!(whiteout.file_type().is_char_device() && whiteout.rdev() == 0);
    drop(rootfs);
    assert_eq!(mounts_under(dir.path())?, Vec::<String>::new());
    Ok(())
}

#[test]
fn tampered_archives_are_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = ImageStore::open(&dir.path().join("store"))?;

    // A docker archive whose layer does not match the config's diff ID.
    let archive = dir.path().join("tampered.tar");
    fs::write(&archive, docker_archive(true)?)?;
    let err = store.import(&archive).expect_err("the layer was changed");
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(store.list()?.is_empty());

    // An OCI layout whose blob does not match its name.
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_hex = sha256_hex(config);
    let mut builder = tar::Builder::new(Vec::new());
    tar_file(&mut builder, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    tar_file(&mut builder, "index.json", br#"{"schemaVersion":2,"manifests":[]}"#)?;
    tar_file(&mut builder, &format!("blobs/sha256/{config_hex}"), b"not the config")?;
    let oci = dir.path().join("oci.tar");
    fs::write(&oci, builder.into_inner()?)?;
    let err = store.import(&oci).expect_err("the blob was changed");
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(!store.blob_path(&Digest::from_hex(&config_hex)?).exists());

    // Something that is neither format.
    let neither = dir.path().join("neither.tar");
    let mut builder = tar::Builder::new(Vec::new());
    tar_file(&mut builder, "README", b"hello")?;
    fs::write(&neither, builder.into_inner()?)?;
    assert!(matches!(store.import(&neither), Err(ImageError::Archive { .. })));
    Ok(())
}
