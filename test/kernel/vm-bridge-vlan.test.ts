// Bridge VLAN filtering options on the full Debian kernel: this machine's kernel is
// built without CONFIG_BRIDGE_VLAN_FILTERING, so the namespace hosts refuse them.
// Every option the schema offers must be one the kernel takes, create and in place.
import { afterAll, beforeAll, expect, it } from "vitest";
import { provider } from "../../provider/runtime";
import { closeAllConnections } from "../../provider/transport/ssh";
import { startVmHost, vmPrerequisites, type VmHost } from "../hosts/vm";
import { ipLink } from "../support/kernel";
import { hostSuite } from "../support/prereq";

hostSuite("Bridge VLAN filtering on a VM host", vmPrerequisites().missing, () => {
  let vm: VmHost;

  beforeAll(async () => {
    vm = await startVmHost({ name: "vm-bridge-vlan" });
    console.log(`[vm-bridge-vlan] boot-to-SSH ${vm.bootMs} ms`);
  }, 600_000);
  afterAll(async () => {
    closeAllConnections();
    await vm?.stop();
  });

  it("creates a VLAN-aware bridge and changes its VLAN options in place", async () => {
    const rt = provider("Bridge");
    const inputs = { connection: vm.connection, name: "brv", vlanFiltering: true, vlanDefaultPvid: 10, vlanProtocol: "802.1ad", stp: true, forwardDelay: 4, helloTime: 1, maxAge: 10, ageingTime: 60, priority: 100, mcastSnooping: false };
    const checked = await rt.check({}, inputs);
    expect(checked.failures).toEqual([]);
    const { id, outs } = await rt.create(checked.inputs);
    let k = await ipLink(vm, "brv");
    expect(k.linkinfo.info_data).toMatchObject({ vlan_filtering: 1, vlan_default_pvid: 10, vlan_protocol: "802.1ad", forward_delay: 400, hello_time: 100, max_age: 1000, priority: 100, mcast_snooping: 0 });
    expect(k.linkinfo.info_data.stp_state).not.toBe(0);
    expect(outs).toMatchObject({ vlanFiltering: true, vlanDefaultPvid: 10, vlanProtocol: "802.1ad" });

    const next = (await rt.check(outs, { ...inputs, vlanFiltering: false, vlanDefaultPvid: 20, vlanProtocol: "802.1Q" })).inputs;
    const diff = await rt.diff(id, outs, next);
    expect(diff).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
    await rt.update(id, outs, next);
    k = await ipLink(vm, "brv");
    expect(k.ifindex).toBe(outs.ifindex);
    expect(k.linkinfo.info_data).toMatchObject({ vlan_filtering: 0, vlan_default_pvid: 20, vlan_protocol: "802.1Q" });

    await rt.delete(id, outs);
    expect(await ipLink(vm, "brv")).toBeUndefined();
  });
});
