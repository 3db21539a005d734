// `persist` proven by a reboot (DESIGN.md §8): a stack of every kind that can
// persist is applied to a real systemd host (Debian userland + systemd-networkd,
// test/hosts/systemd-vm.ts), the VM is rebooted, and every device is checked to
// have come back with the same kind, options, master, addresses and FDB remotes —
// read independently with the system ssh client (`ip -j -d`, `bridge -j`,
// /proc/net/bonding) — and a read of every resource reports no drift. Then
// everything is deleted, the VM rebooted again, and nothing may come back.
import { afterAll, beforeAll, expect, it } from "vitest";
import { closeAllConnections } from "../../provider/transport/ssh";
import { parseProcSlaves } from "../../provider/kinds/bond";
import { provider } from "../../provider/runtime";
import { type SystemdVm, startSystemdVm, systemdVmPrerequisites } from "../hosts/systemd-vm";
import { addrsOf, ipLink } from "../support/kernel";
import { mustRun, up } from "../support/kernel-steps";
import { hostSuite } from "../support/prereq";

hostSuite("persist: devices survive a reboot of a systemd-networkd host", systemdVmPrerequisites(), () => {
  let vm: SystemdVm;
  let conn: SystemdVm["connection"];

  beforeAll(async () => {
    const t0 = Date.now();
    vm = await startSystemdVm({ name: "persist" });
    conn = vm.connection;
    console.log(`[persist-reboot] image ready + boot ${Date.now() - t0} ms, boot-to-SSH ${vm.bootMs} ms`);
  }, 900_000);
  afterAll(async () => {
    closeAllConnections();
    await vm?.stop();
  });

  const sh = (argv: string[]) => mustRun(vm, argv);
  const link = (dev: string) => ipLink(vm, dev);
  const files = async () => (await sh(["sh", "-c", "cd /etc/systemd/network && find . -name '60-pulumi-netdev-*' | sort"])).split("\n").filter(Boolean);

  /** The stack, in dependency order (what Pulumi would create first comes first). */
  const stack = (): [string, Record<string, any>][] => [
    ["Bridge", { name: "br0", stp: false, vlanFiltering: true, vlanDefaultPvid: 1, ageingTime: 120, mtu: 1400, addresses: ["192.0.2.1/24"], vlans: [{ vid: 1, pvid: true, untagged: true }, { vid: 100 }] }],
    [
      "TapDevice",
      {
        name: "tap0", owner: 65534, group: 65534, vnetHdr: true, multiQueue: true, master: "br0",
        // VLAN 1 stays listed: the kernel gives a new port the bridge's default PVID, and
        // networkd adds a port's VLANs but never removes that one (README "Surviving reboots").
        bridgePort: { cost: 10, learning: false, bpduGuard: true, vlans: [{ vid: 1, untagged: true }, { vid: 100, pvid: true, untagged: true }, { vid: "200-201" }] },
      },
    ],
    ["VethPair", { name: "ve0", peerName: "ve1", master: "br0" }],
    // A NIC the stack did not create, configured by the "distribution" (10-distro-nic0.network,
    // which networkd prefers to any 60- file): joins br1 with its address and route moved there.
    ["Bridge", { name: "br1" }],
    ["Interface", { name: "nic0", master: "br1", moveAddresses: true, mtu: 1400, bridgePort: { cost: 20 } }],
    ["MacvlanLink", { name: "mv0", parent: "dummy0", mode: "bridge", addresses: ["198.51.100.5/24"] }],
    ["MacvtapLink", { name: "mvt0", parent: "dummy1", mode: "vepa" }],
    ["IpvlanLink", { name: "ipv0", parent: "dummy2", mode: "l2", flag: "bridge" }],
    ["Vlan", { name: "vl100", parent: "dummy0", vlanId: 100, protocol: "802.1Q", mvrp: true, egressQosMap: { "2": 3 }, addresses: ["203.0.113.1/24"] }],
    // dev eth0: the VXLAN= line goes into a drop-in of the image's own uplink .network.
    ["Vxlan", { name: "vx0", vni: 42, local: "10.0.2.15", dev: "eth0", dstPort: 4789, learning: false, remotes: ["192.0.2.10", "192.0.2.11"] }],
    // Slaves: a dummy nothing manages (a holder .network of ours) and a persisted veth end (a drop-in to its own file).
    ["Bond", { name: "bond0", mode: "active-backup", miimon: 100, primary: "dummy3", slaves: ["dummy3", "ve1"], addresses: ["198.51.100.200/25"] }],
    // A [Route] drop-in for the vlan's own .network.
    ["Route", { destination: "10.99.0.0/24", via: "203.0.113.254", device: "vl100", metric: 50 }],
  ];

  const created: { kind: string; id: string; inputs: Record<string, any>; outs: Record<string, any> }[] = [];
  let before: Record<string, any> = {};

  /** The kernel's view of everything the stack set, read without the project's code. */
  async function kernelView() {
    const view: Record<string, any> = {};
    for (const [kind, inputs] of stack()) {
      if (kind === "Route") continue;
      const names = [inputs.name, ...(inputs.peerName ? [inputs.peerName] : [])];
      for (const n of names) {
        const k = await link(n);
        expect(k, `${n} is missing`).toBeDefined();
        const data = { ...(k.linkinfo?.info_data ?? {}) };
        // Counters and state that legitimately differ between boots.
        for (const f of ["tap_fd", "mii_status", "active_slave", "bridge_id", "root_id", "hello_timer", "tcn_timer", "topology_change_timer", "gc_timer", "designated_root", "root_port", "root_path_cost", "topology_change", "topology_change_detected", "multi_queue_fds", "ad_info", "macvlan_count", "numtxqueues", "numrxqueues"]) delete data[f];
        const port = { ...(k.linkinfo?.info_slave_data ?? {}) };
        for (const f of ["state", "id", "no", "designated_root", "designated_bridge", "designated_cost", "designated_port", "designated_id", "root_id", "bridge_id", "message_age_timer", "forward_delay_timer", "hold_timer", "topology_change_ack", "config_pending", "perm_hwaddr", "link_failure_count", "mii_status", "queue_id", "prio", "ad_aggregator_id", "ad_actor_oper_port_state", "ad_partner_oper_port_state"]) delete port[f];
        view[n] = {
          port,
          kind: k.linkinfo?.info_kind, slaveKind: k.linkinfo?.info_slave_kind, master: k.master, mtu: k.mtu, mac: k.address,
          parent: k.link, up: k.flags.includes("UP"), addresses: addrsOf(k), data,
        };
      }
    }
    view.routes = JSON.parse(await sh(["ip", "-j", "-4", "route", "show", "table", "main", "exact", "10.99.0.0/24"]));
    view.movedRoute = JSON.parse(await sh(["ip", "-j", "-4", "route", "show", "table", "main", "exact", "10.78.0.0/24"]));
    view.fdb = JSON.parse(await sh(["bridge", "-j", "fdb", "show", "dev", "vx0"]))
      .filter((e: any) => e.mac === "00:00:00:00:00:00").map((e: any) => e.dst).sort();
    view.bridgeVlans = JSON.parse(await sh(["bridge", "-j", "vlan", "show"])).filter((p: any) => ["br0", "tap0", "ve0"].includes(p.ifname));
    const bonding = await sh(["cat", "/proc/net/bonding/bond0"]);
    view.bonding = {
      mode: /^Bonding Mode: (.*)$/m.exec(bonding)?.[1],
      primary: /^Primary Slave: (\S+)/m.exec(bonding)?.[1],
      slaves: [...bonding.matchAll(/^Slave Interface: (\S+)/gm)].map((m) => m[1]).sort(),
      miimon: /^MII Polling Interval \(ms\): (\d+)/m.exec(bonding)?.[1],
    };
    return view;
  }

  it("applies the persisted stack: files for every device, parent sides as drop-ins, nothing for a non-persisted device", async () => {
    // The image's dummies are unmanaged and down, as a spare NIC would be: a stacked device needs its parent up.
    for (const d of ["dummy0", "dummy1", "dummy2"]) await sh(["ip", "link", "set", "dev", d, "up"]);
    // The distribution's NIC: its own .network (in /usr/lib, as a vendor's; netplan's is in /run)
    // sorting before ours, an address and a route set by hand.
    await sh(["sh", "-c", "printf '[NetDev]\\nName=nic0\\nKind=dummy\\n' > /etc/systemd/network/10-distro-nic0.netdev && " +
      "printf '[Match]\\nName=nic0\\n\\n[Network]\\nLinkLocalAddressing=no\\nIPv6AcceptRA=no\\nConfigureWithoutCarrier=yes\\n' > /usr/lib/systemd/network/10-distro-nic0.network && networkctl reload"]);
    const managed = Date.now() + 120_000;
    while (!/Network File: \/usr\/lib\/systemd\/network\/10-distro-nic0\.network[^]*\(configured\)|\(configured\)[^]*Network File: \/usr\/lib\/systemd\/network\/10-distro-nic0\.network/.test((await vm.exec(["networkctl", "status", "--no-pager", "nic0"])).stdout)) {
      if (Date.now() > managed) throw new Error(`nic0 not configured by networkd: ${(await vm.exec(["networkctl", "status", "--no-pager", "nic0"])).stdout}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    await sh(["ip", "addr", "add", "10.77.0.5/24", "dev", "nic0"]);
    await sh(["ip", "route", "add", "10.78.0.0/24", "via", "10.77.0.1", "dev", "nic0"]);
    for (const [kind, inputs] of stack()) {
      const r = await up(kind, { connection: conn, persist: true, ...inputs });
      expect(r.outs.persist).toBe(true);
      created.push({ kind, id: r.id, inputs: r.inputs, outs: r.outs });
    }
    // Not persisted: written nowhere, and gone after the reboot.
    const plain = await up("Bridge", { connection: conn, name: "br-plain" });
    created.push({ kind: "Bridge", id: plain.id, inputs: plain.inputs, outs: plain.outs });
    expect(plain.outs.persistedFiles).toBeUndefined();

    const written = await files();
    expect(written).toEqual(expect.arrayContaining([
      "./60-pulumi-netdev-br0.netdev", "./60-pulumi-netdev-br0.network",
      "./60-pulumi-netdev-ve1.network", "./60-pulumi-netdev-ve1.network.d/60-pulumi-netdev-bond0.conf",
      "./60-pulumi-netdev-dummy0.network", "./60-pulumi-netdev-dummy0.network.d/60-pulumi-netdev-mv0.conf",
      "./60-pulumi-netdev-dummy0.network.d/60-pulumi-netdev-vl100.conf",
      "./60-pulumi-netdev-dummy3.network.d/60-pulumi-netdev-bond0.conf",
      "./10-netdev-uplink.network.d/60-pulumi-netdev-vx0.conf",
      "./60-pulumi-netdev-vl100.network.d/60-pulumi-netdev-route-4-main-10.99.0.0_24-50.conf",
      // The NIC's lines in the .network networkd uses for it; the moved address and route in br1's.
      "./10-distro-nic0.network.d/60-pulumi-netdev-nic0.conf",
      "./60-pulumi-netdev-br1.network.d/60-pulumi-netdev-nic0.conf",
    ]));
    expect(written).not.toContain("./60-pulumi-netdev-nic0.network");
    expect(written.filter((f) => f.includes("br-plain"))).toEqual([]);
    expect(await sh(["stat", "-c", "%a", "/etc/systemd/network/60-pulumi-netdev-br0.netdev"])).toBe("644\n");
    before = await kernelView();
    expect(before.fdb).toEqual(["192.0.2.10", "192.0.2.11"]);
    expect(before.bridgeVlans).toEqual(expect.arrayContaining([
      { ifname: "br0", vlans: [{ vlan: 1, flags: ["PVID", "Egress Untagged"] }, { vlan: 100 }] },
      { ifname: "tap0", vlans: [{ vlan: 1, flags: ["Egress Untagged"] }, { vlan: 100, flags: ["PVID", "Egress Untagged"] }, { vlan: 200 }, { vlan: 201 }] },
    ]));
    expect(before.tap0.port).toMatchObject({ cost: 10, learning: false, guard: true });
    expect(before.routes).toEqual([{ dst: "10.99.0.0/24", gateway: "203.0.113.254", dev: "vl100", metric: 50, flags: [] }]);
    expect(before.bonding).toMatchObject({ mode: "fault-tolerance (active-backup)", primary: "dummy3", slaves: ["dummy3", "ve1"] });
    expect(before.nic0).toMatchObject({ master: "br1", mtu: 1400, addresses: [], port: expect.objectContaining({ cost: 20 }) });
    expect(before.br1.addresses).toEqual(["10.77.0.5/24"]);
    expect(before.movedRoute).toEqual([{ dst: "10.78.0.0/24", gateway: "10.77.0.1", dev: "br1", flags: [] }]);
  }, 900_000);

  it("after a reboot every persisted device is back as it was, and a read of each reports no drift", async () => {
    const { ms } = await vm.reboot();
    console.log(`[persist-reboot] reboot-to-SSH ${ms} ms`);
    expect(await link("br-plain")).toBeUndefined();
    const after = await kernelView();
    expect(after).toEqual(before);
    // networkd parsed every file without complaint.
    const log = await sh(["journalctl", "-b", "-u", "systemd-networkd", "--no-pager", "-o", "cat"]);
    expect(log.split("\n").filter((l) => /Unknown key|Failed to parse|Invalid|ignoring/i.test(l))).toEqual([]);

    for (const r of created.filter((c) => c.inputs.name !== "br-plain")) {
      const rt = provider(r.kind);
      const read = await rt.read(r.id, r.outs);
      expect(read.id, `${r.inputs.name ?? r.inputs.destination} read after reboot`).toBe(r.id);
      expect(read.props.persist, `${r.inputs.name ?? r.inputs.destination} files`).toBe(true);
      // No exemption: a persisted bond's slaves are a set (networkd enslaves them in the
      // order they appear at boot; MAC and primary pinned, compared above).
      if (r.kind === "Bond") console.log(`[persist-reboot] bond0 enslave order after the reboot: ${parseProcSlaves(await sh(["cat", "/proc/net/bonding/bond0"])).join(",")}`);
      const diff = await rt.diff(r.id, read.props, r.inputs);
      expect(diff, `${r.inputs.name ?? r.inputs.destination} drift after reboot`).toEqual({ changes: false, replaces: [], deleteBeforeReplace: true });
      r.outs = read.props;
    }
  }, 900_000);

  it("a file edited outside Pulumi is reported by read; the next update rewrites it", async () => {
    const br = created.find((c) => c.inputs.name === "br0")!;
    await sh(["sed", "-i", "s/^STP=no$/STP=yes/", "/etc/systemd/network/60-pulumi-netdev-br0.netdev"]);
    const rt = provider("Bridge");
    const read = await rt.read(br.id, br.outs);
    expect(read.props.persist).toBe(false);
    const diff = await rt.diff(br.id, read.props, br.inputs);
    expect(diff.changes).toBe(true);
    br.outs = (await rt.update(br.id, read.props, br.inputs)).outs;
    expect(await sh(["cat", "/etc/systemd/network/60-pulumi-netdev-br0.netdev"])).toContain("STP=no");
    expect((await rt.read(br.id, br.outs)).props.persist).toBe(true);
  }, 300_000);

  it("delete removes the devices and their files; after another reboot nothing comes back", async () => {
    for (const r of [...created].reverse()) await provider(r.kind).delete(r.id, r.outs);
    expect(await files()).toEqual([]);
    await vm.reboot();
    expect(JSON.parse(await sh(["ip", "-j", "-4", "route", "show", "table", "main", "exact", "10.99.0.0/24"]))).toEqual([]);
    for (const [kind, inputs] of stack()) {
      if (kind === "Route") continue;
      if (kind === "Interface") {
        // The NIC is the distribution's: back as its own file says, in no bridge, its address not on br1.
        expect(await link(inputs.name)).toMatchObject({ mtu: 1500 });
        expect((await link(inputs.name)).master).toBeUndefined();
        continue;
      }
      expect(await link(inputs.name), `${inputs.name} came back`).toBeUndefined();
      if (inputs.peerName) expect(await link(inputs.peerName)).toBeUndefined();
    }
    // The parents are the image's own again: dummies unmanaged (down), the uplink untouched.
    expect((await link("dummy0")).flags).not.toContain("UP");
    expect(await files()).toEqual([]);
  }, 900_000);
});
