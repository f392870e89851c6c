package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// DefaultMaxTags bounds the tags Tags reads from one repository.
const DefaultMaxTags = 10000

// tagPageSize is the number of tags asked for in one request.
const tagPageSize = 1000

// Tags reads the tags of repo, page by page, and hands each to visit. It
// reads at most max tags (DefaultMaxTags when max <= 0) and returns how many
// it read and whether the list was cut there. It never holds the whole
// list: a repository with many thousands of tags costs a few requests and
// the memory of one page. Pages follow the registry's Link header, or, for
// registries that send none, continue after the last tag of a full page.
func (c *Client) Tags(ctx context.Context, repo name.Repository, a Access, max int, visit func(tag string)) (int, bool, error) {
	if max <= 0 {
		max = DefaultMaxTags
	}
	ref, err := a.reference(repo.Tag("latest"))
	if err != nil {
		return 0, false, err
	}
	repo = ref.Context()
	rt, anonymous, err := c.tagTransport(ctx, repo, a)
	if err != nil {
		return 0, false, err
	}
	hc := &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	next := &url.URL{
		Scheme:   repo.Scheme(),
		Host:     repo.RegistryStr(),
		Path:     fmt.Sprintf("/v2/%s/tags/list", repo.RepositoryStr()),
		RawQuery: url.Values{"n": {fmt.Sprint(tagPageSize)}}.Encode(),
	}
	n, last := 0, ""
	for next != nil {
		tags, link, err := c.tagPage(ctx, hc, next, repo)
		if err != nil {
			return n, false, classify(err, anonymous)
		}
		if len(tags) == 0 || (link != nil && link.String() == next.String()) {
			// A page that brings nothing new ends the list.
			break
		}
		for _, t := range tags {
			if n == max {
				return n, true, nil
			}
			visit(t)
			n++
		}
		switch {
		case link != nil:
			next = link
		case len(tags) >= tagPageSize && tags[len(tags)-1] != last:
			last = tags[len(tags)-1]
			q := url.Values{"n": {fmt.Sprint(tagPageSize)}, "last": {last}}
			next = &url.URL{Scheme: next.Scheme, Host: next.Host, Path: next.Path, RawQuery: q.Encode()}
		default:
			next = nil
		}
	}
	return n, false, nil
}

// tagPage reads one page of tags, and the next page's URL from the Link
// header when the registry sends one.
func (c *Client) tagPage(ctx context.Context, hc *http.Client, u *url.URL, repo name.Repository) ([]string, *url.URL, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return nil, nil, err
	}
	var page struct {
		Tags []string `json:"tags"`
	}
	body := io.LimitReader(resp.Body, c.maxManifest+1)
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, nil, err
	}
	if int64(len(data)) > c.maxManifest {
		return nil, nil, &Error{Kind: KindInvalid, Message: fmt.Sprintf("a page of tags is larger than %d bytes", c.maxManifest)}
	}
	if err := json.Unmarshal(data, &page); err != nil {
		return nil, nil, &Error{Kind: KindInvalid, Message: "the registry's tag list is not valid JSON", Err: err}
	}
	link, err := nextPage(resp, repo)
	if err != nil {
		return nil, nil, err
	}
	return page.Tags, link, nil
}

// nextPage is the URL of the next page named by a Link header, which must
// stay on the registry's scheme and host.
func nextPage(resp *http.Response, repo name.Repository) (*url.URL, error) {
	link := resp.Header.Get("Link")
	if link == "" {
		return nil, nil
	}
	start, end := strings.Index(link, "<"), strings.Index(link, ">")
	if start != 0 || end < 1 {
		return nil, &Error{Kind: KindInvalid, Message: "the registry's Link header is malformed"}
	}
	u, err := url.Parse(link[1:end])
	if err != nil {
		return nil, &Error{Kind: KindInvalid, Message: "the registry's Link header is malformed", Err: err}
	}
	u = resp.Request.URL.ResolveReference(u)
	if u.Scheme != resp.Request.URL.Scheme || u.Host != resp.Request.URL.Host {
		return nil, &Error{Kind: KindInvalid, Message: "the registry's next page of tags is on another host"}
	}
	return u, nil
}

// tagTransport is an authenticated transport for reading repo's tags,
// kept per registry, credentials and certificate bundle like the pullers,
// so that listing again does not ping the registry again.
func (c *Client) tagTransport(ctx context.Context, repo name.Repository, a Access) (http.RoundTripper, bool, error) {
	cfg, anonymous, err := credentials(ctx, repo, a)
	if err != nil {
		return nil, false, err
	}
	t, ca, err := c.transportFor(a.CAPEM)
	if err != nil {
		return nil, anonymous, err
	}
	key := pullerKey{registry: repo.Scheme() + "://" + repo.RegistryStr() + "/" + repo.RepositoryStr(), fingerprint: fingerprint(cfg), ca: ca}
	c.mu.Lock()
	rt, ok := c.tagTransports[key]
	c.mu.Unlock()
	if ok {
		return rt, anonymous, nil
	}
	rt, err = transport.NewWithContext(ctx, repo.Registry, authn.FromConfig(*cfg), ScopeCredentials(t, repo.Registry), []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, anonymous, classify(err, anonymous)
	}
	rt = transport.NewUserAgent(rt, c.userAgent)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tagTransports == nil || len(c.tagTransports) >= maxPullers {
		c.tagTransports = map[pullerKey]http.RoundTripper{}
	}
	c.tagTransports[key] = rt
	return rt, anonymous, nil
}
