// Ask before forms marked data-confirm are sent (no inline scripts: the CSP forbids them).
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) event.preventDefault();
});

// Follow a running backup job: poll its status and append its progress (the page carries the URL).
const follow = document.querySelector("[data-follow]");
if (follow) {
  const status = document.getElementById("job-status");
  const tick = async () => {
    const res = await fetch(follow.dataset.follow, { headers: { accept: "application/json" } });
    if (!res.ok) return;
    const job = await res.json();
    follow.textContent = job.progress.join("\n");
    if (status) status.textContent = job.status;
    if (job.status === "queued" || job.status === "running") setTimeout(tick, 1000);
    else if (job.error) follow.textContent += `\n${job.error}`;
  };
  setTimeout(tick, 500);
}
