// Heimdall dashboard: status and plugin overview.
const status = document.getElementById("status");
const list = document.getElementById("plugins");

async function load() {
  try {
    const health = await (await fetch("/api/health")).json();
    status.textContent = health.status === "ok"
      ? `online · v${health.version} · Discord ${health.discord ? "on" : "off"}`
      : "database unreachable";
    status.className = "pill " + (health.status === "ok" ? "ok" : "bad");
    const plugins = await (await fetch("/api/plugins")).json();
    list.replaceChildren(...plugins.map((p) => {
      const li = document.createElement("li");
      const name = document.createElement("b");
      name.textContent = p.name;
      const desc = document.createElement("small");
      desc.textContent = `${p.description} · ${p.collections.length} collections`;
      li.append(name, desc);
      return li;
    }));
  } catch (e) {
    status.textContent = "unreachable";
    status.className = "pill bad";
  }
}
load();
