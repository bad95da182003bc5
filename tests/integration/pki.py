"""pki.py: certificates made at test time with the openssl command line.

    pki = Pki(directory)            # a CA (EC P-256)
    crt, key = pki.node("n1@127.0.0.1")                   # CN = the node name
    crt, key = pki.node("n1@10.0.0.1", ips=["10.0.0.1"])  # SAN iPAddress
    crt, key = pki.node("n1@127.0.0.1", expired=True)     # valid only in 2020
    other = Pki(directory, "other-ca")                      # a CA nobody trusts

`openssl ca` signs, so that validity can be set in the past or the future.
"""
import os
import subprocess

CA_CONF = """[ca]
default_ca = this_ca
[this_ca]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}
serial = {dir}/serial
default_md = sha256
policy = anything
copy_extensions = none
unique_subject = no
[anything]
organizationName = optional
commonName = supplied
"""


def run(*args):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


class Pki:
    def __init__(self, directory, name="ca"):
        self.dir = os.path.join(directory, name)
        os.makedirs(self.dir, exist_ok=True)
        self.name = name
        self.crt = os.path.join(self.dir, "ca.crt")
        self.key = os.path.join(self.dir, "ca.key")
        self.conf = os.path.join(self.dir, "ca.cnf")
        with open(os.path.join(self.dir, "index.txt"), "w"):
            pass
        with open(os.path.join(self.dir, "serial"), "w") as f:
            f.write("1000\n")
        with open(self.conf, "w") as f:
            f.write(CA_CONF.format(dir=self.dir))
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", self.key, "-out", self.crt, "-days", "30", "-subj", "/CN=" + name,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.n = 0

    def node(self, cn, ips=(), dns=(), expired=False, future=False, tag=""):
        """A certificate and key for cn, signed by this CA: (crt, key)."""
        self.n += 1
        base = os.path.join(self.dir, "%s%s-%d" % (cn.split("@")[0], tag, self.n))
        key, csr, crt, ext = base + ".key", base + ".csr", base + ".crt", base + ".ext"
        run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + cn)
        sans = ["IP:" + ip for ip in ips] + ["DNS:" + d for d in dns]
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n")
            f.write("keyUsage=critical,digitalSignature,keyAgreement\n")
            f.write("extendedKeyUsage=serverAuth,clientAuth\n")
            if sans:
                f.write("subjectAltName=%s\n" % ",".join(sans))
        if expired:
            dates = ["-startdate", "20200101000000Z", "-enddate", "20200201000000Z"]
        elif future:
            dates = ["-startdate", "20400101000000Z", "-enddate", "20400201000000Z"]
        else:
            dates = ["-days", "30"]
        run("openssl", "ca", "-batch", "-notext", "-config", self.conf, "-cert", self.crt,
            "-keyfile", self.key, "-in", csr, "-out", crt, "-extfile", ext, *dates)
        return crt, key


def tls_config(crt, key, ca, **extra):
    """The tls block of a daemon's config."""
    t = {"enabled": True, "cert": crt, "key": key, "ca": ca}
    t.update(extra)
    return {"tls": t}
