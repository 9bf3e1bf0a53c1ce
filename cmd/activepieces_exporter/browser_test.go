package main

import (
	"bytes"
	"context"
	"flag"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write docs/status-page.png from the browser test")

// chromium runs headless Chromium with args and returns what it printed.
func chromium(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
		"--no-first-run", "--disable-extensions", "--user-data-dir=" + t.TempDir(), "--virtual-time-budget=2000"}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errOut.String())
	}
	return out.String()
}

// The status page in a real browser against --demo: the flaky flow, failing, above the healthy
// ones, with its failed step and a link to the run; screenshots at a phone's width and a desktop's
// are not blank.
func TestStatusPageInABrowser(t *testing.T) {
	browser := testkit.RequireTool(t, "chromium")
	addr, stop := startDemoExporter(t)
	defer stop()
	page := "http://" + addr + "/status?project="
	project := waitForFlakyFailing(t, addr)
	checkFlakyRowInBrowser(t, browser, page, project)
	for _, c := range []struct {
		width int
		dark  bool
	}{{375, false}, {1280, false}, {1280, true}} {
		checkScreenshot(t, browser, page+project, c.width, c.dark)
	}
	if *updateScreenshot {
		updateStatusScreenshot(t, browser, page+project)
	}
}

// startDemoExporter builds the exporter and starts it with --demo on a free port; it returns the
// address and a func that stops it.
func startDemoExporter(t *testing.T) (addr string, stop func()) {
	t.Helper()
	bin := buildBinary(t)
	addr = testkit.FreePort(t)
	var logs testkit.LockedBuffer
	cmd := exec.Command(bin, "--demo", "--demo.rate=20", "--poll.interval=1s", "--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Env = append(os.Environ(), "ACTIVEPIECES_API_KEY=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return addr, func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }
}

// waitForFlakyFailing finds the demo's "Sales Ops" project on the status page: it waits until its
// flaky flow's latest run failed, and returns the project's id.
func waitForFlakyFailing(t *testing.T, addr string) (project string) {
	t.Helper()
	testkit.WaitFor(t, 60*time.Second, "the flaky flow failing on the status page", func() bool {
		body, code, err := scrape("http://" + addr + "/status")
		if err != nil || code != 200 {
			return false
		}
		m := regexp.MustCompile(`<a href="\?project=([A-Za-z0-9]+)"><bdi>Sales Ops</bdi>`).FindStringSubmatch(body)
		if m == nil {
			return false
		}
		project = m[1]
		return regexp.MustCompile(`class="flow failing">\s*<td[^>]*><span class="badge failing">✖ Failing</span></td>\s*<td[^>]*><a class="flow-name" href="[^"]+"><bdi>Flaky webhook relay`).MatchString(body)
	})
	return project
}

// checkFlakyRowInBrowser checks, in the DOM the browser builds from project's status page, that
// the flaky flow is failing and above the first healthy one.
func checkFlakyRowInBrowser(t *testing.T, browser, page, project string) {
	t.Helper()
	// The browser loads the page while the demo runs on: the flaky flow may have recovered by
	// then; look again until the browser sees it failing (it fails a third of its runs).
	var rows [][]string
	flaky, firstHealthy := -1, -1
	for try := 0; try < 20 && (flaky < 0 || rows[flaky][1] != "failing"); try++ {
		dom := chromium(t, browser, "--dump-dom", page+project)
		rows = regexp.MustCompile(`<tr id="flow-[^"]+" class="flow (\w+)">[\s\S]*?</tr>`).FindAllStringSubmatch(dom, -1)
		flaky, firstHealthy = rowsOf(t, rows, project)
	}
	if flaky < 0 || rows[flaky][1] != "failing" || firstHealthy >= 0 && flaky > firstHealthy {
		t.Errorf("in the browser's DOM the flaky flow is row %d, the first healthy one row %d (of %d); want it failing, above", flaky, firstHealthy, len(rows))
	}
}

// checkScreenshot takes a screenshot of url at width (dark or not) and checks it is not blank:
// as wide as asked, with at least 20 colours, and its background light or dark to match.
func checkScreenshot(t *testing.T, browser, url string, width int, dark bool) {
	t.Helper()
	img := screenshot(t, browser, url, width, dark)
	colours := map[uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[r>>8<<16|g>>8<<8|bl>>8] = true
		}
	}
	if b.Dx() != width || len(colours) < 20 {
		t.Errorf("screenshot at %d px (dark %v): %dx%d with %d colours: blank?", width, dark, b.Dx(), b.Dy(), len(colours))
	}
	// The page follows the reader's colour scheme: its background is light, or dark.
	r, g, bl, _ := img.At(2, 2).RGBA()
	if light := (r+g+bl)/3>>8 > 128; light == dark {
		t.Errorf("screenshot at %d px (dark %v): background (%d,%d,%d)", width, dark, r>>8, g>>8, bl>>8)
	}
}

// updateStatusScreenshot writes docs/status-page.png for the README: a moment at which a flow is
// failing (a red badge in the health column). It tries up to 20 screenshots of url.
func updateStatusScreenshot(t *testing.T, browser, url string) {
	t.Helper()
	for range 20 {
		shot := filepath.Join(t.TempDir(), "status.png")
		chromium(t, browser, "--screenshot="+shot, "--window-size=1280,1100", url)
		data, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if redPixels(img) < 30 {
			continue
		}
		if err := os.WriteFile("../../docs/status-page.png", data, 0o644); err != nil {
			t.Fatal(err)
		}
		break
	}
}

// redPixels counts the badge-red pixels in the part of a 1280 px screenshot where the health
// column's badges are.
func redPixels(img image.Image) int {
	red := 0
	for y := 250; y < 700; y++ {
		for x := 15; x < 130; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if r>>8 > 180 && g>>8 < 80 && b>>8 < 80 {
				red++
			}
		}
	}
	return red
}

// screenshot loads url in headless Chromium at width (in its dark scheme when dark) and returns
// the picture.
func screenshot(t *testing.T, browser, url string, width int, dark bool) image.Image {
	t.Helper()
	shot := filepath.Join(t.TempDir(), "status.png")
	args := []string{"--screenshot=" + shot, "--window-size=" + strconv.Itoa(width) + ",1100"}
	if dark {
		args = append(args, "--force-dark-mode", "--blink-settings=preferredColorScheme=0")
	}
	chromium(t, browser, append(args, url)...)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// rowsOf finds, among the status page's flow rows, the flaky demo flow's (checking that it shows
// its failed step and a run link) and the first healthy one.
func rowsOf(t *testing.T, rows [][]string, project string) (flaky, firstHealthy int) {
	t.Helper()
	flaky, firstHealthy = -1, -1
	for i, r := range rows {
		if strings.Contains(r[0], "Flaky webhook relay") {
			flaky = i
			if !strings.Contains(r[0], `class="failed-step"`) || !regexp.MustCompile(`<a class="run-link" href="http://127\.0\.0\.1:\d+/projects/`+project+`/runs/\w+">`).MatchString(r[0]) {
				t.Errorf("the flaky flow's row lacks its failed step or run link:\n%s", r[0])
			}
		}
		if r[1] == "healthy" && firstHealthy < 0 {
			firstHealthy = i
		}
	}
	return flaky, firstHealthy
}
