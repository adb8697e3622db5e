// Uploads: files picked with "Upload" or dropped anywhere on the page, one after another, each
// with a progress bar, through POST /play/upload.

const $ = (id) => document.getElementById(id);

/** ``ctx.api`` sends; ``uploaded(titles)`` runs once some files went in. */
export function watchUploads(ctx, uploaded) {
  const all = (files) => uploadAll(ctx, files, uploaded).catch(ctx.report);
  $("upload").addEventListener("change", (event) => all(event.target.files));
  const overlay = $("drop");
  const carriesFiles = (event) =>
    ctx.api.key !== null && [...(event.dataTransfer?.types || [])].includes("Files");
  document.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    overlay.hidden = false;
  });
  document.addEventListener("dragleave", (event) => {
    if (event.relatedTarget === null) overlay.hidden = true;
  });
  document.addEventListener("drop", (event) => {
    overlay.hidden = true;
    if (!carriesFiles(event)) return;
    event.preventDefault();
    all(event.dataTransfer.files);
  });
}

async function uploadAll(ctx, files, uploaded) {
  const audioFiles = [...files];
  if (!ctx.api.key || audioFiles.length === 0) return;
  const done = [];
  for (const [i, file] of audioFiles.entries()) {
    $("upload-name").textContent = `Uploading ${file.name} (${i + 1} of ${audioFiles.length})`;
    $("upload-row").hidden = false;
    const { status, body } = await send(ctx.api.key, file);
    if (status === 201) done.push(body.title);
    else if (status === 401) return ctx.api.refused();
    else if (status === 0) ctx.say(`${file.name}: the upload did not reach Mosic.`, true);
    else ctx.say(`${file.name}: ${(body && (body.description || body.title)) || status}`, true);
  }
  $("upload-row").hidden = true;
  $("upload").value = "";
  if (done.length) await uploaded(done);
}

function send(key, file) {
  // XMLHttpRequest, not fetch: only it reports upload progress.
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    const bar = $("upload-progress");
    bar.value = 0;
    xhr.open("POST", "/play/upload");
    xhr.setRequestHeader("X-API-Key", key);
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) bar.value = (100 * event.loaded) / event.total;
    });
    xhr.addEventListener("load", () => {
      bar.value = 100;
      resolve({ status: xhr.status, body: xhr.response });
    });
    xhr.addEventListener("error", () => resolve({ status: 0, body: null }));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}
