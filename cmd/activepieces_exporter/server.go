package main

import "github.com/activepieces-exporter/activepieces_exporter/apiclient"

// editionName is how check names an edition.
func editionName(e string) string {
	switch e {
	case apiclient.EditionCommunity:
		return "Community"
	case apiclient.EditionEnterprise:
		return "Enterprise"
	case apiclient.EditionCloud:
		return "Cloud"
	}
	return e
}
