// Models (/model/info: price, health, cooldown, latency, in-flight) and the running config.
import { get } from "./api.js";
import { clear, count, failure, h, loading, table, when } from "./dom.js";

const perMillion = (v) => (v === null || v === undefined ? "—" : `$${(v * 1e6).toFixed(2)}`);

export async function modelsPage(view) {
  const body = h("div", {}, loading());
  clear(view, h("h1", {}, "Models"), body);
  try {
    const { data } = await get("/model/info");
    clear(body, table({
      caption: count(data.length, "deployment"), empty: "No models configured.", rows: data,
      columns: [
        { title: "Model", render: (r) => r.model_name },
        { title: "Provider", render: (r) => String(r.litellm_params.model || "").split("/")[0] },
        { title: "Upstream model", render: (r) => h("code", {}, r.litellm_params.model || "—") },
        { title: "Price in / out per 1M", render: (r) => `${perMillion(r.model_info.input_cost_per_token)} / ${perMillion(r.model_info.output_cost_per_token)}` },
        { title: "Health", render: (r) => { const s = r.model_info.deployment_state || {}; return h("span", { class: s.healthy === false ? "tag bad" : "tag ok" }, s.healthy === false ? "cooling down" : "healthy"); } },
        { title: "Cooldown until", render: (r) => when((r.model_info.deployment_state || {}).cooling_until) },
        { title: "Latency", render: (r) => { const s = r.model_info.deployment_state || {}; return s.latency_ewma_s ? `${Math.round(s.latency_ewma_s * 1000)} ms` : "—"; } },
        { title: "In flight", render: (r) => String((r.model_info.deployment_state || {}).in_flight ?? 0) },
      ],
    }));
  } catch (err) {
    clear(body, failure(err));
  }
}

export async function configPage(view, session) {
  const body = h("div", {}, loading());
  clear(view, h("h1", {}, "Config"), h("p", { class: "muted" }, "The running configuration, read-only; every secret is masked."), body);
  if (session.role !== "master") {
    clear(body, h("p", { class: "empty" }, "Only the master key's session may see the config."));
    return;
  }
  try {
    const data = await get("/ui/config");
    clear(body, h("pre", { id: "config-json", class: "card code", tabindex: "0" }, JSON.stringify(data, null, 2)));
  } catch (err) {
    clear(body, failure(err));
  }
}
